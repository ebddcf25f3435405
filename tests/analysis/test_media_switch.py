"""A re-INVITE that changes the media ends the RTP stream where its SDP says, as Wireshark counts:
a switch to T.38 fax (UDPTL) on the same ports stops the audio streams; a new port starts new
streams; a new codec on the same ports and SSRC stays one stream. Each capture is made here."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lab.analysis.model import load
from lab.analysis.synth import Datagram, SynthCall, SynthStream
from lab.analysis.wireshark import fields

from .conftest import A, B
from .test_rtp import assert_equal_to_tshark

AUDIO = 100  # RTP packets each way before the re-INVITE
FAX = 150  # UDPTL packets each way after it


def sdp(host: str, port: int, media: str) -> str:
    if media == "t38":
        lines = [f"m=image {port} udptl t38", f"c=IN IP4 {host}", "a=T38FaxVersion:0"]
    else:
        pt = {"PCMU": 0, "PCMA": 8}[media]
        lines = [f"m=audio {port} RTP/AVP {pt}", f"c=IN IP4 {host}", f"a=rtpmap:{pt} {media}/8000"]
    return "\r\n".join(["v=0", f"o=- 1 2 IN IP4 {host}", "s=-", "t=0 0", *lines]) + "\r\n"


def udptl(seq: int) -> bytes:
    """A T.38 UDPTL packet (sequence number, primary IFP, redundancy): its sequence numbers are
    in 0x8000-0xBFFF, so its first byte reads as RTP version 2."""
    ifp = bytes([0x06, 0xC0, 0x01, 0x80]) + bytes(8)
    return struct.pack("!HB", seq, len(ifp)) + ifp + b"\x00"


def switched_call(path: Path, to: str) -> Path:
    """A call whose callee re-INVITEs, after 2 s of PCMU: to T.38 on the same ports ("t38"), to
    PCMU on new ports ("port"), or to PCMA on the same ports ("codec")."""
    call = SynthCall(
        streams=[
            SynthStream(A, 4000, B, 5000, 0x1111, packets=AUDIO),
            SynthStream(B, 5000, A, 4000, 0x2222, packets=AUDIO, seed=2),
        ]
    )
    at = call.t0 + 0.6 + AUDIO * 0.02 + 0.1
    a_port, b_port, media = {
        "t38": (4000, 5000, "t38"),
        "port": (4002, 5002, "PCMU"),
        "codec": (4000, 5000, "PCMA"),
    }[to]
    call.then = call.reinvite(at, sdp(B, b_port, media), sdp(A, a_port, media))
    start = at + 0.1
    if to == "t38":
        call.then += [
            Datagram(start + n * 0.03, src, sport, dst, dport, udptl(0x8000 + n))
            for n in range(FAX)
            for src, sport, dst, dport in ((A, 4000, B, 5000), (B, 5000, A, 4000))
        ]
    else:
        pt = 0 if media == "PCMU" else 8
        for ssrc, src, sport, dst, dport in ((0x1111, A, 4000, B, b_port), (0x2222, B, 5000, A, a_port)):
            stream = SynthStream(src, sport, dst, dport, ssrc, pt=pt, codec=media, packets=80, first_seq=1100)
            call.then += stream.datagrams(start)
    return call.write(path)


def test_a_switch_to_t38_ends_the_audio_streams(tmp_path: Path) -> None:
    path = switched_call(tmp_path / "fax.pcap", "t38")
    assert len(fields(path, "t38", "frame.number")) == 2 * FAX, "tshark must see the UDPTL as T.38"
    assert assert_equal_to_tshark(path) == 2
    assert sorted(s.stats.packets for s in load(path, names={}).streams) == [AUDIO, AUDIO]


@pytest.mark.parametrize(("to", "streams"), [("port", 4), ("codec", 2)])
def test_a_new_port_starts_new_streams_a_new_codec_does_not(tmp_path: Path, to: str, streams: int) -> None:
    path = switched_call(tmp_path / f"{to}.pcap", to)
    assert assert_equal_to_tshark(path) == streams
    codecs = {s.codec for s in load(path, names={}).streams}
    assert codecs == {"PCMU"}, "a stream names the codec most of its packets carry"


def test_a_fax_only_call_has_no_rtp(tmp_path: Path) -> None:
    """Its SDP sets up only T.38: the UDPTL on those ports is not taken for RTP by any heuristic."""
    call = SynthCall()
    call.then = call.reinvite(call.t0 + 1, sdp(B, 5000, "t38"), sdp(A, 4000, "t38"))
    call.then += [Datagram(call.t0 + 1.2 + n * 0.03, A, 4000, B, 5000, udptl(0x8000 + n)) for n in range(FAX)]
    path = call.write(tmp_path / "fax_only.pcap")
    assert len(fields(path, "t38", "frame.number")) == FAX
    assert assert_equal_to_tshark(path) == 0
