"""A video call's video m-line at the gateway: offered on the SIP leg as the browser offered
it (VP8, H.264), declined toward the browser, and what the far end's SIP answer made of it.

The gateway relays no video yet (pjsua2 has none and no SIP party of the lab sends any), so
toward the browser the video m-line is answered with port 0 and a=inactive at once: the
browser sends no video, and its WebRTC setup still overlaps the SIP call's. On the SIP leg
the video m-line is offered, so that the far end says in its answer whether it takes video;
a GSM phone's gateway declines it (port 0). pjsua2 takes no m-line it did not provision:
the gateway dials with two audio streams and this edit makes the second one the video.
"""

from __future__ import annotations

import re

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


def sip_offer(browser_offer: str) -> SdpEdit:
    """The SDP edit that makes the second m-line of the gateway's SIP offer (a second audio
    stream pjsua provisioned for it: SipCall.dial(media_lines=2)) the browser's VP8 and
    H.264, with their rtpmap and fmtp. pjsua takes no m-line it did not provision."""
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
        port = lines[starts[1]].split()[1]
        connection = [line for line in lines[starts[1] :] if line.startswith("c=")]
        video = [
            f"m=video {port} RTP/AVP {' '.join(map(str, pts))}",
            *connection[:1],
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
    return False, f"the far end ({far_end}) took video ({codecs}), but this gateway relays no video yet"
