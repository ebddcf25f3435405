"""The gateway's video relay (lab.gateway.videorelay), between a stand-in for aiortc's video
transceiver and a SIP end that is a UDP socket pair; the real call: test_videophone_call."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtcpRrPacket, RtpPacket
from aiortc_fakes import SENDER_SSRC, FakeCodec, FakePc, FakeTransceiver, until

from lab.config import MOBILE_NUMBER_RE
from lab.gateway import relay, video, videorelay
from lab.tasks import Tasks

BROWSER_PT, SIP_PT, RTX_PT = 96, 97, 98
BROWSER_SSRC, SIP_SSRC = 0x2222, 0x3333


def rtp(pt: int, ssrc: int, seq: int, payload: bytes = b"\x10vp8", marker: int = 1) -> bytes:
    return RtpPacket(
        payload_type=pt, marker=marker, sequence_number=seq, timestamp=90, ssrc=ssrc, payload=payload
    ).serialize()


def test_a_packet_changes_only_its_payload_type_and_ssrc() -> None:
    packet = rtp(SIP_PT, SIP_SSRC, 7, marker=1)
    out = relay.rewrite(packet, BROWSER_PT, SENDER_SSRC)
    parsed = RtpPacket.parse(out)
    assert (parsed.payload_type, parsed.marker, parsed.ssrc) == (BROWSER_PT, 1, SENDER_SSRC)
    assert (parsed.sequence_number, parsed.timestamp, parsed.payload) == (7, 90, b"\x10vp8")
    assert len(out) == len(packet) and out[12:] == packet[12:]
    assert RtpPacket.parse(relay.rewrite(packet, BROWSER_PT)).ssrc == SIP_SSRC
    with pytest.raises(ValueError):
        relay.rewrite(b"\x00" * 12, 96)


def test_pli_and_fir_ask_for_a_keyframe_a_receiver_report_does_not() -> None:
    pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2)
    fir = RtcpPsfbPacket(fmt=videorelay.RTCP_PSFB_FIR, ssrc=1, media_ssrc=2)
    remb = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0)
    assert videorelay.asks_for_keyframe(RtcpPacket.parse(bytes(RtcpRrPacket(ssrc=1)) + bytes(pli)))
    assert videorelay.asks_for_keyframe([fir]) and not videorelay.asks_for_keyframe(
        [remb, RtcpRrPacket(ssrc=1)]
    )
    assert relay.is_rtcp(bytes(pli)) and not relay.is_rtcp(rtp(SIP_PT, 1, 1))


def test_the_relay_takes_an_even_port_and_the_next_for_rtcp() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    first = port - port % 2
    try:
        rtp_sock, rtcp_sock = relay.bind_pair("127.0.0.1", range(first, first + 20))
    except OSError:
        pytest.skip("the ports next to an ephemeral one are busy")
    assert rtp_sock.getsockname()[1] % 2 == 0 and rtp_sock.getsockname()[1] != first
    assert rtcp_sock.getsockname()[1] == rtp_sock.getsockname()[1] + 1
    rtp_sock.close(), rtcp_sock.close()
    with pytest.raises(OSError, match="no free RTP port pair for video on 127.0.0.1"):
        relay.bind_pair("127.0.0.1", range(first, first + 2))
    taken.close()


async def test_vp8_is_relayed_both_ways_and_keyframes_are_asked_for_across() -> None:
    sip_rtp, sip_rtcp = relay.bind_pair("127.0.0.1", range(30000, 60000))
    sip_rtp.setblocking(False), sip_rtcp.setblocking(False)
    far = sip_rtp.getsockname()
    video_relay = videorelay.VideoRelay.open(
        "127.0.0.1", range(30000, 60000), Tasks("test", logging.getLogger("test"))
    )
    transceiver, pc = (
        FakeTransceiver(
            "video",
            [FakeCodec("video/VP8", BROWSER_PT), FakeCodec("video/rtx", RTX_PT), FakeCodec("video/H264", 99)],
        ),
        FakePc(),
    )
    try:
        await video_relay.start(far, {"VP8": SIP_PT})
        video_relay.attach(pc, transceiver, ("VP8",))  # type: ignore[arg-type]
        video_relay.negotiated()
        assert [c.mimeType for c in transceiver._codecs] == ["video/VP8"]  # what the answer names
        assert pc.tracks[0].kind == "video"
        loop = asyncio.get_running_loop()

        # SIP -> browser: the browser's payload type and the SSRC the gateway's answer named.
        sip_rtp.sendto(rtp(SIP_PT, SIP_SSRC, 1), ("127.0.0.1", video_relay.port))
        await until(lambda: transceiver.sender.transport.sent, "a packet toward the browser")
        toward_browser = RtpPacket.parse(transceiver.sender.transport.sent[0])
        assert (toward_browser.payload_type, toward_browser.ssrc, toward_browser.payload) == (
            BROWSER_PT,
            SENDER_SSRC,
            b"\x10vp8",
        )
        # ... and, its first packet delivered, the SIP end is asked for a keyframe (a PLI).
        asked = RtcpPacket.parse(await asyncio.wait_for(loop.sock_recv(sip_rtcp, 2048), 2))
        assert asked == [RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=SENDER_SSRC, media_ssrc=SIP_SSRC)]

        # browser -> SIP: the SIP answer's payload type; RTX stays on the browser leg.
        receive = transceiver.receiver._handle_rtp_packet
        await receive(RtpPacket.parse(rtp(RTX_PT, 0x9999, 1)), 0)
        await receive(RtpPacket.parse(rtp(BROWSER_PT, BROWSER_SSRC, 5)), 0)
        toward_sip = RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(sip_rtp, 2048), 2))
        assert (toward_sip.payload_type, toward_sip.ssrc, toward_sip.sequence_number) == (
            SIP_PT,
            BROWSER_SSRC,
            5,
        )
        assert transceiver.receiver.plis == [BROWSER_SSRC]  # the browser asked for a keyframe too

        # A PLI from the SIP end reaches the browser; one from the browser reaches the SIP end.
        sip_rtcp.sendto(
            bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=SIP_SSRC, media_ssrc=BROWSER_SSRC)),
            ("127.0.0.1", video_relay.port + 1),
        )
        await until(lambda: len(transceiver.receiver.plis) == 2, "a PLI toward the browser")
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=BROWSER_SSRC, media_ssrc=SENDER_SSRC)
        await transceiver.sender._handle_rtcp_packet(pli)
        assert transceiver.sender.rtcp == [pli]  # aiortc's own handling goes on
        asked = RtcpPacket.parse(await asyncio.wait_for(loop.sock_recv(sip_rtcp, 2048), 2))
        assert asked[0].media_ssrc == SIP_SSRC
        assert video_relay.counts.describe() == {
            "to_sip": 1,
            "to_browser": 1,
            "keyframes_asked_of_sip": 2,
            "keyframes_asked_of_browser": 2,
            "from_sip": 1,
            "dropped": 0,
        }
    finally:
        video_relay.close()
        sip_rtp.close(), sip_rtcp.close()


def test_the_relay_plan_pairs_the_sip_answers_codec_with_the_browsers() -> None:
    browser = (
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
        "m=video 5002 UDP/TLS/RTP/SAVPF 96 97 99\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n"
        "a=rtpmap:99 H264/90000\r\n"
    )
    answer = (
        "v=0\r\nc=IN IP4 127.0.0.10\r\nm=audio 42000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=video 42002 RTP/AVP 97\r\na=rtpmap:97 VP8/90000\r\na=sendrecv\r\n"
    )
    assert video.relay_plan(answer, browser) == video.RelayPlan("VP8", 97, 96, ("127.0.0.10", 42002))
    assert video.relay_plan(answer.replace("m=video 42002", "m=video 0"), browser) is None
    assert video.relay_plan(answer.replace("VP8", "VP9"), browser) is None  # would need transcoding
    assert video.relay_plan(answer.split("m=video")[0], browser) is None


def test_only_a_number_that_is_not_a_mobile_one_may_take_video() -> None:
    assert video.may_take_video("1001", MOBILE_NUMBER_RE)
    assert not video.may_take_video("+79991234567", MOBILE_NUMBER_RE)
    assert not video.may_take_video("89991234567", MOBILE_NUMBER_RE)
