"""A video call's video m-line at the gateway: offered on the SIP leg as the browser offered
it (VP8, H.264), and what the far end's SIP answer made of it.

A mobile number's far end is a GSM phone, which has no video: toward the browser the video
m-line is answered with port 0 and a=inactive at once, so the browser sends no video and
its WebRTC setup still overlaps the SIP call's; the SIP leg is offered the video all the
same, and the PSTN gateway declines it (port 0). Any other number may reach a SIP video
phone: the gateway answers the browser once the far end has answered (relay_plan), and when
it took the video the gateway relays it (lab.gateway.videorelay) from a UDP port of its own
that the SIP offer's video m-line names. pjsua2 takes no m-line it did not provision: the
gateway dials with two audio streams and this edit makes the second one the video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.sip.sdp import SdpEdit, parse_sdp

#: the video codecs the SIP leg is offered, of those the browser offered (rtpmap names)
SIP_VIDEO_CODECS = ("VP8", "H264")

_FMT = re.compile(r"a=(?:rtpmap|fmtp):([0-9]{1,3})[\s]")
_VIDEO_PORT = re.compile(r"^m=video +[^ \r\n]+", re.MULTILINE)


def offers_video(sdp: str) -> bool:
    """The browser offers video in a codec the SIP leg is offered too."""
    return any(
        m.media == "video" and m.port and any(c.name.upper() in SIP_VIDEO_CODECS for c in m.codecs)
        for m in parse_sdp(sdp)
    )


def may_take_video(number: str, mobile_number_re: str) -> bool:
    """Whether the number may reach a party with video: any but a mobile one (the lab's SIP
    server sends those to the PSTN gateway, whose phones have none)."""
    return re.fullmatch(mobile_number_re.removeprefix("^").removesuffix("$"), number) is None


def sip_offer(browser_offer: str, relay_port: int | None = None) -> SdpEdit:
    """The SDP edit that makes the second m-line of the gateway's SIP offer (a second audio
    stream pjsua provisioned for it: SipCall.dial(media_lines=2)) the browser's VP8 and
    H.264, with their rtpmap and fmtp, on `relay_port` (the gateway's video relay) when
    given, else on that stream's port. pjsua takes no m-line it did not provision."""
    media = next((m for m in parse_sdp(browser_offer) if m.media == "video"), None)
    pts = [c.pt for c in media.codecs if c.name.upper() in SIP_VIDEO_CODECS] if media else []
    lines = [line.rstrip("\r") for line in browser_offer.split("\n")]
    start = next((i for i, line in enumerate(lines) if line.startswith("m=video")), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    attributes = [line for line in lines[start:end] if (m := _FMT.match(line)) and int(m.group(1)) in pts]

    def edit(local: str, remote: str) -> str:
        newline = "\r\n" if "\r\n" in local else "\n"
        lines = local.rstrip("\r\n").split(newline)
        starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
        if remote or not pts or len(starts) != 2 or not lines[starts[1]].startswith("m=audio "):
            return local  # an answer, or not the two audio m-lines of our offer
        port = str(relay_port) if relay_port is not None else lines[starts[1]].split()[1]
        # The audio's address (the gateway's): in a re-offer pjsua gives the stream it no
        # longer uses (the far end answered it as video) another one, 127.0.0.1.
        connection = [line for line in lines[: starts[1]] if line.startswith("c=")][-1:]
        video = [
            f"m=video {port} RTP/AVP {' '.join(map(str, pts))}",
            *connection,
            *attributes,
            "a=sendrecv",
        ]
        return newline.join(lines[: starts[1]] + video) + newline

    return edit


def declined_toward_browser(answer: str) -> str:
    """The gateway's WebRTC answer with its video m-lines declined: port 0."""
    return _VIDEO_PORT.sub("m=video 0", answer)


def far_end_verdict(sip_answer: str, far_end: str) -> tuple[bool, str]:
    """Whether the far end's SIP answer declined the offered video, and a sentence saying so."""
    video = [m for m in parse_sdp(sip_answer) if m.media == "video"]
    if not video or not video[0].port:
        how = "port 0 in its SDP answer" if video else "no video m-line in its SDP answer"
        return True, f"video declined by the far end ({far_end}: {how}); the call goes on as voice"
    codecs = ",".join(c.name for c in video[0].codecs)
    return False, f"the far end ({far_end}) took video ({codecs}); the gateway relays it"


@dataclass(frozen=True)
class RelayPlan:
    """What the video relay needs of the two answers: one codec both ends have, each leg's
    payload type for it, and where the SIP end takes its RTP."""

    codec: str  # rtpmap name: VP8, H264
    sip_pt: int
    browser_pt: int  # in the browser's offer; the gateway's answer keeps it
    far: tuple[str, int]


def relay_plan(sip_answer: str, browser_offer: str) -> RelayPlan | None:
    """The relay for the SIP far end's video answer, or None when it declined the video (or
    took a codec the browser did not offer, which would need transcoding)."""
    sip = next((m for m in parse_sdp(sip_answer) if m.media == "video"), None)
    browser = next((m for m in parse_sdp(browser_offer) if m.media == "video"), None)
    if sip is None or not sip.port or not sip.codecs or browser is None or sip.direction == "inactive":
        return None
    codec = sip.codecs[0]
    same = next((c for c in browser.codecs if c.name.upper() == codec.name.upper()), None)
    if same is None:
        return None
    return RelayPlan(codec.name.upper(), codec.pt, same.pt, (sip.address, sip.port))
