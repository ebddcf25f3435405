from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis.model import load
from lab.analysis.wireshark import fields
from lab.sip.message import parse_sip, redact
from lab.sip.sdp import parse_sdp

from .conftest import shared

INVITE = (
    "INVITE sip:+79991234567@127.0.0.3 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-1\r\n"
    "f: <sip:VKP009@127.0.0.3>;tag=abc\r\n"
    "t: <sip:+79991234567@127.0.0.3>\r\n"
    "i: call-1\r\n"
    "CSeq: 2 INVITE\r\n"
    'Proxy-Authorization: Digest username="VKP009", response="deadbeef"\r\n'
    "c: application/sdp\r\n"
    "l: 120\r\n\r\n"
    "v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendonly\r\n"
)


def test_parses_compact_headers_and_sdp() -> None:
    msg = parse_sip(INVITE.encode())
    assert msg is not None and msg.method == "INVITE" and msg.status is None
    assert msg.headers["call-id"] == "call-1" and msg.tag("from") == "abc" and msg.branch == "z9hG4bK-1"
    (media,) = msg.sdp
    assert (media.address, media.port, media.direction) == ("127.0.0.2", 20000, "sendonly")
    assert [str(c) for c in media.codecs] == ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]
    assert media.summary == "audio PCMU,PCMA sendonly"


def test_credentials_never_leave_the_parser() -> None:
    msg = parse_sip(INVITE.encode())
    assert msg is not None and "deadbeef" not in msg.raw and "Proxy-Authorization: [redacted]" in msg.raw
    assert redact("Authorization: Digest x\r\nVia: y") == "Authorization: [redacted]\r\nVia: y"


def test_not_sip() -> None:
    assert parse_sip(b"\x80\x00 rtp") is None
    assert parse_sip(b"GET / HTTP/1.1\r\n\r\n") is None


def test_session_level_connection_and_direction() -> None:
    (media,) = parse_sdp("v=0\r\nc=IN IP4 10.1.1.1\r\na=inactive\r\nm=audio 4000 RTP/AVP 3\r\n")
    assert (media.address, media.direction, media.codecs[0].name) == ("10.1.1.1", "inactive", "GSM")


def tshark_sip_frames(path: Path) -> list[int]:
    return [int(frame) for (frame,) in fields(path, "sip", "frame.number")]


@pytest.mark.parametrize(
    "name", ["sip_ipv4_tcp.pcap", "sip_ipv6_udp.pcap", "sip_tcp_websocket.pcap", "sip_ipv4_tcp_retrans.pcap"]
)
def test_same_sip_messages_as_tshark(name: str) -> None:
    path = shared(name)
    model = load(path, names={})
    assert [m.frame for m in model.messages] == tshark_sip_frames(path)


def test_websocket_and_retransmissions() -> None:
    model = load(shared("sip_tcp_websocket.pcap"), names={})
    assert {m.transport for m in model.messages} == {"UDP", "WS"}
    again = [m for m in model.messages if m.retransmission]
    assert again and all(m.label == "183 Session Progress" for m in again)
    assert load(shared("sip_ipv4_tcp_retrans.pcap"), names={}).tcp_retransmissions == 1
