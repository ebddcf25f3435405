"""The browser leg's own setup in the call model and on the ladder: ICE checks (STUN) and the
DTLS handshake from the capture, the SDP offer and answer from the client's log."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import struct
from pathlib import Path

import pytest

from lab import plots
from lab.analysis import dtls, stun
from lab.analysis.call_steps import webrtc_steps
from lab.analysis.ladder import ladder_rows, webrtc_rows
from lab.analysis.model import WebrtcPacket, load
from lab.analysis.recorded_call import analyze
from lab.analysis.wireshark import fields
from lab.sip.sdp import webrtc_summary, without_ice_password

#: aiortc's offer as the lab's client sends it (lab.webrtc: ICE on 127.0.0.1 only)
OFFER = (Path(__file__).parents[1] / "fixtures" / "aiortc_offer.sdp").read_bytes().decode()
ANSWER = (
    OFFER.replace("58823", "48102")
    .replace("127.0.0.1", "127.0.0.2")
    .replace(" 96 9 0 8", " 96")
    .replace("a=setup:actpass", "a=setup:active")
    + "m=video 0 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 VP8/90000\r\n"
)


def test_stun_and_dtls_messages_equal_wiresharks(lab_capture: Path) -> None:
    """tshark's dissection is the reference: the same datagrams in the same order, each with
    the same STUN message type, or the same DTLS records (content types) and handshake
    messages (one per record, a message split over records once per fragment)."""
    model = load(lab_capture)
    wireshark = fields(
        lab_capture,
        "stun || dtls",
        "frame.number",
        "stun.type",
        "dtls.record.content_type",
        "dtls.handshake.type",
        "dtls.record.epoch",
    )
    assert len(wireshark) == len(model.webrtc) == 10  # 4 STUN, 4 handshake datagrams, 2 alerts
    for p, (frame, stun_type, content, handshake, epoch) in zip(model.webrtc, wireshark, strict=True):
        assert p.frame == int(frame)
        if p.stun is not None:
            assert (f"0x{p.stun.type:04x}", content) == (stun_type, "")
            continue
        assert stun_type == ""
        assert ",".join(str(r.content_type) for r in p.dtls) == content
        assert ",".join(str(r.epoch) for r in p.dtls) == epoch
        assert ",".join(str(r.handshake.type) for r in p.dtls if r.handshake) == handshake
    # What tshark shows of the first check: its attributes, the nomination, the mapped address
    use_candidate = fields(lab_capture, "stun.att.type == 0x0025", "frame.number")
    assert [p.frame for p in model.webrtc if p.stun and p.stun.use_candidate] == [
        int(f) for (f,) in use_candidate
    ]
    mapped = fields(  # XOR-d with the magic cookie, as the attribute carries them
        lab_capture, "stun.att.ipv4-xord", "frame.number", "stun.att.ipv4-xord", "stun.att.port-xord"
    )
    assert [(p.frame, p.stun.mapped) for p in model.webrtc if p.stun and p.stun.mapped] == [
        (int(f), f"{ipaddress.IPv4Address(int(ip, 16) ^ stun.MAGIC_COOKIE)}:{int(port, 16) ^ 0x2112}")
        for f, ip, port in mapped
    ]


def test_ladder_shows_the_setup_between_websocket_and_srtp(lab_capture: Path) -> None:
    model = load(lab_capture)
    rows = [r for r in ladder_rows(model) if r.style == "webrtc"]
    assert [(r.src, r.dst, r.label) for r in rows] == [
        ("Gateway", "Browser", "STUN Binding Request"),
        ("Browser", "Gateway", "STUN Binding Success Response"),
        ("Browser", "Gateway", "STUN Binding Request, USE-CANDIDATE"),
        ("Gateway", "Browser", "STUN Binding Success Response"),
        ("Gateway", "Browser", "DTLS ClientHello"),
        (
            "Browser",
            "Gateway",
            "DTLS ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone",
        ),
        (
            "Gateway",
            "Browser",
            "DTLS Certificate, ClientKeyExchange, CertificateVerify, ChangeCipherSpec, Finished (encrypted)",
        ),
        ("Browser", "Gateway", "DTLS ChangeCipherSpec, Finished (encrypted)"),
        ("Gateway", "Browser", "DTLS Alert (encrypted)"),
        ("Browser", "Gateway", "DTLS Alert (encrypted)"),
    ]
    assert rows[2].note == "ICE controlling: 1 Binding request this way, 1 with USE-CANDIDATE"
    assert rows[1].note == "mapped address 127.0.0.2:48102"
    assert rows[4].note.startswith("DTLS 1.0; use_srtp SRTP_AEAD_AES_256_GCM, SRTP_AEAD_AES_128_GCM")
    assert rows[5].note == "DTLS 1.2; use_srtp SRTP_AEAD_AES_256_GCM"  # the profile chosen
    srtp = [s for s in model.streams if model.srtp(s)]
    assert {(s.src_party, s.dst_party) for s in srtp} == {("Browser", "Gateway"), ("Gateway", "Browser")}
    assert rows[7].t < min(s.stats.start for s in srtp) - model.start
    texts = [t.get_text() for t in plots.ladder(model).axes[0].texts]
    assert all(any(r.label in t for t in texts) for r in rows)
    assert sum("SRTP PT96" in t for t in texts) == 1  # the browser leg's band names it SRTP


def _check(
    t: float, src: str, dst: str, frame: int, msg_type: int, tid: int, *attributes: int
) -> WebrtcPacket:
    message = stun.StunMessage(msg_type, tid.to_bytes(12, "big"), attributes)
    return WebrtcPacket(frame, t, f"{src}:1", f"{dst}:2", src, dst, message, (), False)


def test_ice_checks_are_compressed_per_direction_and_hop() -> None:
    """Dozens of checks and consent checks through the Internet party: each hop and direction
    shows its first request and its nomination, with their responses; the rest is a count."""
    packets = []
    frame = 0
    hops = [("Browser", "Internet"), ("Internet", "Gateway")]
    for k in range(12):  # the browser's checks, the 4th nominates; each answered
        extra = (stun.ICE_CONTROLLING, stun.USE_CANDIDATE) if k == 3 else (stun.ICE_CONTROLLING,)
        for src, dst in hops:
            frame += 1
            packets.append(_check(frame / 100, src, dst, frame, 0x0001, k, *extra))
        for dst, src in reversed(hops):
            frame += 1
            packets.append(_check(frame / 100, src, dst, frame, 0x0101, k, stun.XOR_MAPPED_ADDRESS))
    frame += 1
    conflict = _check(frame / 100, "Gateway", "Internet", frame, 0x0111, 99, stun.ERROR_CODE)
    packets.append(dataclasses.replace(conflict, stun=dataclasses.replace(conflict.stun, error=487)))
    rows = webrtc_rows(tuple(packets))
    shown = [(r.src, r.dst, r.label) for r in rows]
    request, nominating = "STUN Binding Request", "STUN Binding Request, USE-CANDIDATE"
    response = "STUN Binding Success Response"
    first = [("Browser", "Internet", request), ("Internet", "Gateway", request)]
    answer = [("Gateway", "Internet", response), ("Internet", "Browser", response)]
    nominated = [("Browser", "Internet", nominating), ("Internet", "Gateway", nominating)]
    assert shown == first + answer + nominated + answer + [
        ("Gateway", "Internet", "STUN Binding Error Response 487")
    ]
    assert rows[0].note == "ICE controlling: 12 Binding requests this way, 1 with USE-CANDIDATE"
    assert rows[4].note == "ICE: nominates this candidate pair"
    assert rows[-1].style == "failure"


def _record(content: int, epoch: int, seq: int, body: bytes) -> bytes:
    return struct.pack("!BHHHIH", content, 0xFEFD, epoch, 0, seq, len(body)) + body


def _handshake(kind: int, message_seq: int, body: bytes) -> bytes:
    length = len(body).to_bytes(3, "big")
    return bytes([kind]) + length + message_seq.to_bytes(2, "big") + b"\0\0\0" + length + body


def test_a_retransmitted_flight_and_data_channel_datagrams() -> None:
    hello = _record(dtls.HANDSHAKE, 0, 0, _handshake(dtls.CLIENT_HELLO, 0, b"\x01" * 40))
    again = _record(dtls.HANDSHAKE, 0, 1, _handshake(dtls.CLIENT_HELLO, 0, b"\x01" * 40))
    data = _record(dtls.APPLICATION_DATA, 1, 5, b"\x99" * 30)
    parsed = [dtls.parse(d) for d in (hello, again, data, data, data)]
    assert all(p is not None for p in parsed)
    packets = tuple(
        WebrtcPacket(i, i / 10, "a:1", "b:2", "Gateway", "Browser", None, p or (), i == 1)
        for i, p in enumerate(parsed)
    )
    rows = webrtc_rows(packets)
    assert [(r.label, r.style, r.note) for r in rows] == [
        ("DTLS ClientHello", "webrtc", "DTLS 1.2"),
        ("DTLS ClientHello", "retransmission", "DTLS 1.2"),
        ("DTLS Application Data (encrypted)", "webrtc", "3 datagrams this way"),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x80\x60" + b"\0" * 30,  # RTP
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"\x00\x01\x00\x00" + b"\0" * 16,  # no magic cookie
        b"\x00\x01\x00\x08\x21\x12\xa4\x42" + b"\0" * 12,  # length past the end
        b"\x16\xfe\xfd" + b"\0" * 8 + b"\x00\x10" + b"\0" * 4,  # record cut short
        b"\x16\x03\x03" + b"\0" * 8 + b"\x00\x00",  # TLS, not DTLS
    ],
)
def test_other_datagrams_are_neither_stun_nor_dtls(payload: bytes) -> None:
    assert stun.parse(payload) is None and dtls.parse(payload) is None


def test_sdp_summary_names_codecs_candidates_fingerprint_and_role() -> None:
    assert webrtc_summary(OFFER) == (
        "audio opus,G722,PCMU,PCMA sendrecv; ICE host udp 127.0.0.1:58823; "
        "DTLS setup actpass, sha-256 EB:CA:59:90...39:52"
    )
    assert webrtc_summary(ANSWER) == (
        "audio opus sendrecv; video declined (port 0); ICE host udp 127.0.0.2:48102; "
        "DTLS setup active, sha-256 EB:CA:59:90...39:52"
    )
    redacted = without_ice_password(OFFER)
    assert "D5yvSHiEOyc6sSGWOW2pkA" not in redacted and "a=ice-pwd:[redacted]\r\n" in redacted
    assert redacted.replace("[redacted]", "D5yvSHiEOyc6sSGWOW2pkA") == OFFER


def test_a_lab_calls_sdp_and_setup_are_its_webrtc_steps(lab_capture: Path, tmp_path: Path) -> None:
    """The client's log puts the offer and answer on the ladder (as WebSocket messages with
    their summary); the anatomy notebook's WebRTC steps then all show, in order."""
    start = load(lab_capture).start
    capture = tmp_path / "call.pcapng"
    capture.write_bytes(lab_capture.read_bytes())
    log = {
        "call_id": "fixture",
        "number": "+79991234567",
        "webrtc_codec": {"pt": 96, "name": "opus", "rate": 48000},
        "statuses": [{"status": "PENDING", "t": start + 0.015, "sip_code": None, "reason": ""}],
        "webrtc_sdp": [
            {"t": start + 0.016, "from": "browser", "kind": "offer", "sdp": without_ice_password(OFFER)},
            {"t": start + 0.060, "from": "gateway", "kind": "answer", "sdp": without_ice_password(ANSWER)},
        ],
    }
    (tmp_path / "call").mkdir()
    (tmp_path / "call" / "call.json").write_text(json.dumps(log))
    model = analyze(capture, with_pesq=False)
    offer = next(r for r in ladder_rows(model) if r.label == "SDP offer")
    assert (offer.src, offer.dst, offer.style) == ("Browser", "Gateway", "event")
    assert offer.note == "WebSocket; " + webrtc_summary(OFFER)
    steps = webrtc_steps(model)
    assert [s.number for s in steps if s.row is not None] == ["W1", "W2", "W3", "W4", "W5", "W6", "W7"]
    assert [s.t for s in steps if s.t is not None] == sorted(s.t for s in steps if s.t is not None)
    assert steps[5].shown_as.startswith("Gateway -> Browser: DTLS Certificate, ClientKeyExchange")
    assert steps[6].shown_as == "Browser -> Gateway: DTLS ChangeCipherSpec, Finished (encrypted)"
    assert steps[7].shown_as == "Browser->Gateway opus, Gateway->Browser opus"
    # Without the log (any capture) the capture's own part still shows.
    bare = webrtc_steps(dataclasses.replace(model, events=()))
    assert [s.number for s in bare if s.row is not None] == ["W3", "W4", "W5", "W6", "W7"]
