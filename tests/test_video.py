"""A video call's video at the gateway (lab.gateway.video) and the client's camera; the
call itself, end to end, is in test_call_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.gateway import video
from lab.sip.sdp import parse_sdp
from lab.webrtc import ColourBarCamera

BROWSER_OFFER = (Path(__file__).parent / "fixtures" / "aiortc_video_offer.sdp").read_bytes().decode()


def pjsua_offer(media_lines: int) -> str:
    """The shape of the gateway's pjsua offer: c= inside each audio m-line."""
    head = "v=0\r\no=- 3 2 IN IP4 127.0.0.2\r\ns=pjmedia\r\nt=0 0\r\n"
    audio = (
        "m=audio {port} RTP/AVP 0 8 120\r\nc=IN IP4 127.0.0.2\r\na=rtcp:{rtcp} IN IP4 127.0.0.2\r\n"
        "a=sendrecv\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:120 telephone-event/8000\r\n"
    )
    return head + "".join(audio.format(port=20000 + 2 * i, rtcp=20001 + 2 * i) for i in range(media_lines))


def test_the_second_audio_m_line_becomes_the_browsers_vp8_and_h264() -> None:
    edit = video.sip_offer(BROWSER_OFFER)
    offer = edit(pjsua_offer(2), "")
    audio, vid = parse_sdp(offer)
    assert (audio.media, audio.port, [c.name for c in audio.codecs]) == (
        "audio",
        20000,
        ["PCMU", "PCMA", "telephone-event"],
    )
    assert (vid.media, vid.port, vid.address, vid.direction) == ("video", 20002, "127.0.0.2", "sendrecv")
    assert [(c.pt, c.name, c.rate) for c in vid.codecs] == [
        (97, "VP8", 90000),
        (99, "H264", 90000),
        (101, "H264", 90000),
    ]
    assert "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" in offer
    assert "rtx" not in offer and "apt=" not in offer  # RTX is the browser leg's, not SIP's
    assert offer.startswith(pjsua_offer(1)) and offer.endswith("a=sendrecv\r\n")
    assert "\n\n" not in offer.replace("\r\n", "\n")
    # Answers, and offers without the second audio stream, go out as pjsua made them.
    assert edit(pjsua_offer(2), "v=0\r\n") == pjsua_offer(2)
    assert edit(pjsua_offer(1), "") == pjsua_offer(1)
    assert edit(offer, "") == offer
    # A browser offer whose video has neither VP8 nor H.264: no video for the SIP leg.
    vp9 = BROWSER_OFFER.replace("VP8", "VP9").replace("H264", "AV1")
    assert not video.offers_video(vp9) and video.sip_offer(vp9)(pjsua_offer(2), "") == pjsua_offer(2)


def test_the_browser_is_answered_video_port_0_and_the_far_end_said_why() -> None:
    answer = BROWSER_OFFER.replace("a=setup:actpass", "a=setup:active")
    declined = parse_sdp(video.declined_toward_browser(answer))
    assert [(m.media, m.port) for m in declined] == [("audio", 56433), ("video", 0)]
    assert video.offers_video(BROWSER_OFFER) and not video.offers_video(video.declined_toward_browser(answer))
    rejected = pjsua_offer(1) + "m=video 0 RTP/AVP 97\r\n"
    assert video.far_end_verdict(rejected, "PSTN gateway") == (
        True,
        "video declined by the far end (PSTN gateway: port 0 in its SDP answer); the call goes on as voice",
    )
    assert video.far_end_verdict(pjsua_offer(1), "PSTN gateway")[0] is True
    taken = video.sip_offer(BROWSER_OFFER)(pjsua_offer(2), "")
    assert video.far_end_verdict(taken, "Video phone") == (
        False,
        "the far end (Video phone) took video (VP8,H264,H264); the gateway relays it",
    )


async def test_the_camera_films_moving_colour_bars() -> None:
    camera = ColourBarCamera()
    first, second = await camera.recv(), await camera.recv()
    a, b = first.to_ndarray(format="rgb24"), second.to_ndarray(format="rgb24")
    assert a.shape == b.shape == (240, 320, 3)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) == 8  # seven bars and the moving one
    assert not np.array_equal(a, b) and second.pts > first.pts
    camera.stop()


def test_toward_a_video_phone_the_sip_offer_names_the_gateways_relay_port() -> None:
    offer = video.sip_offer(BROWSER_OFFER, 20052)(pjsua_offer(2), "")
    audio, vid = parse_sdp(offer)
    assert (audio.port, vid.media, vid.port, vid.address) == (20000, "video", 20052, "127.0.0.2")
    assert [c.name for c in vid.codecs] == ["VP8", "H264", "H264"]


def test_a_re_offer_keeps_the_relay_on_the_gateways_address() -> None:
    """A hold's re-INVITE: pjsua names 127.0.0.1 for the stream the far end took as video;
    the video m-line still points at the gateway's relay (else the phone's video is lost)."""
    second = pjsua_offer(2).split("m=audio 20002")
    reoffer = second[0] + "m=audio 20002" + second[1].replace("c=IN IP4 127.0.0.2", "c=IN IP4 127.0.0.1", 1)
    assert "c=IN IP4 127.0.0.1" in reoffer
    _, vid = parse_sdp(video.sip_offer(BROWSER_OFFER, 20052)(reoffer, ""))
    assert (vid.media, vid.port, vid.address) == ("video", 20052, "127.0.0.2")
