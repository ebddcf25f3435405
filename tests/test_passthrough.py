"""The gateway's G.711 passthrough (lab.gateway.passthrough): which calls get it, the SIP
edit, and the relay between a stand-in for aiortc's audio transceiver and a SIP end that is
a UDP socket pair, digits both ways; the real calls: test_passthrough_calls."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from aiortc.rtp import RtpPacket
from aiortc_fakes import SENDER_SSRC, FakeCodec, FakePc, FakeTransceiver, until

from lab.gateway import passthrough, relay
from lab.gateway.passthrough import AudioPassthrough, digit_packets, passthrough_codec, sip_edit
from lab.sip.sdp import parse_sdp
from lab.tasks import Tasks

WEBRTC = ["opus", "PCMU", "PCMA", "G722", "telephone-event"]
BROWSER_PCMU, SIP_PCMU, SIP_EVENT = 0, 0, 101
BROWSER_SSRC, SIP_SSRC = 0x2222, 0x3333


def offer(*codecs: str) -> str:
    pts = {"opus": 111, "PCMU": 0, "PCMA": 8, "G722": 9, "iLBC": 97, "telephone-event": 126}
    names = {"opus": "opus/48000/2", "iLBC": "iLBC/8000", "PCMU": "PCMU/8000", "PCMA": "PCMA/8000"}
    names["G722"] = "G722/8000"
    rtpmaps = "".join(f"a=rtpmap:{pts[c]} {names.get(c, 'telephone-event/48000')}\r\n" for c in codecs)
    media = " ".join(str(pts[c]) for c in codecs)
    return f"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF {media}\r\n{rtpmaps}"


def test_a_call_is_passed_through_when_the_browser_chose_g711_and_the_sip_leg_may_take_it() -> None:
    assert passthrough_codec(offer("PCMU"), WEBRTC, None) == "PCMU"
    assert passthrough_codec(offer("PCMA", "telephone-event"), WEBRTC, "PCMA") == "PCMA"
    assert passthrough_codec(offer("iLBC", "PCMA"), WEBRTC, None) == "PCMA"  # aiortc has no iLBC
    # aiortc takes the offer's first codec it has: Opus, so the browser leg is Opus
    assert passthrough_codec(offer("opus", "PCMU"), WEBRTC, None) is None
    assert passthrough_codec(offer("G722"), WEBRTC, None) is None
    assert passthrough_codec(offer("PCMU"), WEBRTC, "G722") is None  # the call asked another SIP codec
    assert passthrough_codec(offer("PCMU"), WEBRTC, "PCMA") is None
    assert passthrough_codec(offer("PCMU").replace("m=audio 9", "m=audio 0"), WEBRTC, None) is None


PJSUA_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.2\r\ns=pjmedia\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    "m=audio 20000 RTP/AVP 0 120\r\na=rtcp:20001 IN IP4 127.0.0.2\r\na=sendrecv\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:120 telephone-event/8000\r\na=fmtp:120 0-16\r\n"
)


def test_every_sdp_pjsua_makes_names_the_relays_ports() -> None:
    edit = sip_edit(20050)
    edited = edit(PJSUA_OFFER, "")
    assert "m=audio 20050 RTP/AVP 0 120\r\n" in edited and "a=rtcp:20051 IN IP4 127.0.0.2\r\n" in edited
    assert edited.replace("20050", "20000").replace("20051", "20001") == PJSUA_OFFER
    hold = PJSUA_OFFER.replace("a=sendrecv", "a=sendonly")
    assert edit(hold, "").count("20050") == 1 and "a=sendonly" in edit(hold, "")  # a re-INVITE
    assert "m=audio 20050 " in edit(PJSUA_OFFER, PJSUA_OFFER)  # an answer
    assert edit("v=0\r\nm=video 5000 RTP/AVP 96\r\n", "") == "v=0\r\nm=video 5000 RTP/AVP 96\r\n"
    [media] = parse_sdp(edited)
    assert media.port == 20050


def test_the_far_ends_answer_gives_where_its_audio_goes_and_its_payload_types() -> None:
    answer = PJSUA_OFFER.replace("127.0.0.2", "127.0.0.4").replace("m=audio 20000", "m=audio 30004")
    assert passthrough.far_end(answer) == (("127.0.0.4", 30004), {"pcmu": 0, "telephone-event": 120})
    assert passthrough.far_end(answer.replace("m=audio 30004", "m=audio 0")) is None


def test_a_digit_is_rfc_4733_events_growing_20_ms_then_its_end_three_times() -> None:
    packets = digit_packets("#")
    assert [first for _, first in packets] == [True] + [False] * 7
    fields = [struct.unpack("!BBH", payload) for payload, _ in packets]
    assert {event for event, _, _ in fields} == {11}  # '#'
    assert [duration for _, _, duration in fields] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert [flags >> 7 for _, flags, _ in fields] == [0] * 5 + [1] * 3  # the E bit
    with pytest.raises(ValueError, match="DTMF digit 'x'"):
        digit_packets("x")


def rtp(pt: int, ssrc: int, seq: int, timestamp: int = 160, payload: bytes = b"\xff" * 160) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence_number=seq, timestamp=timestamp, ssrc=ssrc, payload=payload
    ).serialize()


async def test_g711_is_relayed_both_ways_untouched_with_digits_in_the_media() -> None:
    sip_rtp, sip_rtcp = relay.bind_pair("127.0.0.1", range(30000, 60000))
    sip_rtp.setblocking(False)
    far = sip_rtp.getsockname()
    audio = AudioPassthrough.open("127.0.0.1", range(30000, 60000), Tasks("test", logging.getLogger("test")))
    heard: list[str] = []
    audio.on_digit = heard.append
    transceiver = FakeTransceiver(
        "audio", [FakeCodec("audio/PCMU", 0), FakeCodec("audio/telephone-event", 126)]
    )
    pc = FakePc()
    loop = asyncio.get_running_loop()
    try:
        await audio.start(far, {"PCMU": SIP_PCMU, "telephone-event": SIP_EVENT})
        audio.attach(pc, transceiver, ("PCMU",))  # type: ignore[arg-type]
        audio.negotiated()
        # The answer names PCMU alone: aiortc's telephone-event is at 48 kHz, G.711's at 8.
        assert [c.mimeType for c in transceiver._codecs] == ["audio/PCMU"]
        assert pc.tracks[0].kind == "audio"

        # SIP -> browser: the payload as it came, under the SSRC the gateway's answer named.
        speech = bytes(range(160))
        sip_rtp.sendto(rtp(SIP_PCMU, SIP_SSRC, 7, payload=speech), ("127.0.0.1", audio.port))
        await until(lambda: transceiver.sender.transport.sent, "packet toward the browser")
        toward_browser = RtpPacket.parse(transceiver.sender.transport.sent[0])
        assert (toward_browser.payload_type, toward_browser.ssrc) == (BROWSER_PCMU, SENDER_SSRC)
        assert (toward_browser.sequence_number, toward_browser.payload) == (7, speech)
        # ... and the far end's digits are read, not passed on (the browser leg has no events)
        for payload, _ in digit_packets("5"):
            sip_rtp.sendto(rtp(SIP_EVENT, SIP_SSRC, 8, 320, payload), ("127.0.0.1", audio.port))
        await until(lambda: heard == ["5"], "digit 5 from the far end")
        assert len(transceiver.sender.transport.sent) == 1

        # browser -> SIP: untouched, in the browser's own stream.
        receive = transceiver.receiver._handle_rtp_packet
        await receive(RtpPacket.parse(rtp(BROWSER_PCMU, BROWSER_SSRC, 100, 1600, speech)), 0)
        toward_sip = RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(sip_rtp, 2048), 2))
        assert (toward_sip.payload_type, toward_sip.ssrc, toward_sip.sequence_number) == (
            SIP_PCMU,
            BROWSER_SSRC,
            100,
        )
        assert toward_sip.payload == speech

        # Digits the client asks for take the place of the browser's next packets.
        audio.send_digits("12")
        sent: list[RtpPacket] = []
        for i in range(30):
            await receive(RtpPacket.parse(rtp(BROWSER_PCMU, BROWSER_SSRC, 101 + i, 1760 + 160 * i)), 0)
            sent.append(RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(sip_rtp, 2048), 2)))
        assert [p.sequence_number for p in sent] == list(range(101, 131))  # no gap, nothing added
        events = [p for p in sent if p.payload_type == SIP_EVENT]
        assert len(events) == 16 and {p.ssrc for p in sent} == {BROWSER_SSRC}
        assert [p.sequence_number for p in events] == [*range(101, 109), *range(113, 121)]
        starts = sorted({p.timestamp for p in events})
        assert starts == [1760, 1760 + 12 * 160]  # each digit at the timestamp of its first packet
        assert [p.marker for p in events] == ([1] + [0] * 7) * 2
        assert [p.payload[0] for p in events] == [1] * 8 + [2] * 8
        assert audio.counts.describe() == {"to_sip": 31, "from_sip": 9, "to_browser": 1, "dropped": 0}
    finally:
        audio.close()
        sip_rtp.close(), sip_rtcp.close()


async def test_digits_need_the_far_end_to_take_telephone_event() -> None:
    audio = AudioPassthrough.open("127.0.0.1", range(30000, 60000), Tasks("test", logging.getLogger("test")))
    try:
        await audio.start(("127.0.0.1", 9), {"PCMU": 0})
        with pytest.raises(RuntimeError, match="took no telephone-event: send the digits with method 'info'"):
            audio.send_digits("1")
    finally:
        audio.close()
