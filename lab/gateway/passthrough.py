"""G.711 passthrough: when the browser leg and the SIP leg carry one codec (PCMU or PCMA), the
gateway relays the audio packets as they came (lab.gateway.relay) instead of decoding,
bridging and encoding them, as Janus's SIP plugin does. No transcoding cost, and no buffer
on the way but the kernel's.

How pjsua2 is kept out of the media: every SDP pjsua makes in the call (the offer, a hold's
re-INVITE, an answer to the far end's) names the relay's port pair instead of its stream's
(sip_edit), so the far end sends there. pjsua's stream still exists, but nothing is
connected to its conference port, and pjmedia sends RTP only for audio it is given: the far
end sees one source. pjsua's stream still sends RTCP reports (which say it sent nothing).

What the gateway did through pjsua's stream, the relay does: DTMF the far end sends (RFC
4733) is read from the relayed packets; DTMF the client asks for goes out as RFC 4733
packets in the browser's stream, each in the place of an audio packet (its sequence number,
so the far end's jitter buffer sees no gap); the media watchdog counts the relay's packets.
The browser leg is answered without telephone-event (aiortc's is at 48 kHz, G.711's at 8),
so a browser sends its digits through the gateway (SendDtmf) in such a call.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable

from aiortc.rtp import RtpPacket

from lab.gateway.relay import RtpRelay
from lab.sip.sdp import SdpEdit, parse_sdp
from lab.tasks import Tasks
from lab.webrtc import EVENT_DIGITS, TelephoneEvents

#: the codecs relayed untouched when both legs carry them; any other pair is transcoded
PASSTHROUGH_CODECS = ("PCMU", "PCMA")
TELEPHONE_EVENT = "telephone-event"
SAMPLES_PER_PACKET = 160  # 20 ms at G.711's 8 kHz
DIGIT_PACKETS = 5  # a digit's tone: 100 ms
END_PACKETS = 3  # RFC 4733 section 2.5.1.4: the end of an event is sent three times
DIGIT_GAP_PACKETS = 4  # 80 ms of the browser's audio between two digits
EVENT_VOLUME = 10  # dBm0 below full scale


def browser_codec(browser_offer: str, webrtc_codecs: Iterable[str]) -> str | None:
    """The browser leg's audio codec (upper case), as aiortc picks it: the first the browser
    offers that the gateway's WebRTC side has (`webrtc_codecs`, encoding names)."""
    known = {name.lower() for name in webrtc_codecs} - {TELEPHONE_EVENT}
    audio = next((m for m in parse_sdp(browser_offer) if m.media == "audio" and m.port), None)
    if audio is None:
        return None
    return next((c.name.upper() for c in audio.codecs if c.name.lower() in known), None)


def passthrough_codec(browser_offer: str, webrtc_codecs: Iterable[str], sip_choice: str | None) -> str | None:
    """The codec both legs can carry untouched (PCMU, PCMA), or None when the call must be
    transcoded: the browser's (browser_codec), which the SIP leg takes unless the call asked
    for another (`sip_choice`)."""
    chosen = browser_codec(browser_offer, webrtc_codecs)
    if chosen not in PASSTHROUGH_CODECS or sip_choice not in (None, chosen):
        return None
    return chosen


def sip_edit(port: int) -> SdpEdit:
    """The edit that names the relay's RTP `port` (and RTCP, the next) in the first audio
    m-line of every SDP pjsua makes for the call, offers and answers alike."""

    def edit(local: str, remote: str) -> str:
        newline = "\r\n" if "\r\n" in local else "\n"
        lines = local.split(newline)
        start = next((i for i, line in enumerate(lines) if line.startswith("m=audio ")), None)
        if start is None:
            return local
        parts = lines[start].split(" ")
        lines[start] = " ".join([parts[0], str(port), *parts[2:]])
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("m="):
                break
            if lines[i].startswith("a=rtcp:"):
                rest = lines[i].removeprefix("a=rtcp:").split(" ", 1)
                lines[i] = f"a=rtcp:{port + 1}" + (f" {rest[1]}" if len(rest) > 1 else "")
        return newline.join(lines)

    return edit


def far_end(sip_answer: str) -> tuple[tuple[str, int], dict[str, int]] | None:
    """Where the far end's SDP answer takes its audio, and its payload type of each codec;
    None when it has no audio."""
    audio = next((m for m in parse_sdp(sip_answer) if m.media == "audio" and m.port), None)
    if audio is None:
        return None
    pts: dict[str, int] = {}
    for codec in audio.codecs:
        pts.setdefault(codec.name.lower(), codec.pt)
    return (audio.address, audio.port), pts


def digit_packets(digit: str) -> list[tuple[bytes, bool]]:
    """One digit's RFC 4733 payloads, each with whether it is the event's first (its marker):
    the tone growing 20 ms a packet, then its end three times."""
    if digit not in EVENT_DIGITS:
        raise ValueError(f"DTMF digit {digit!r}: one of {EVENT_DIGITS}")
    event = EVENT_DIGITS.index(digit)
    tone = [
        (struct.pack("!BBH", event, EVENT_VOLUME, SAMPLES_PER_PACKET * n), n == 1)
        for n in range(1, DIGIT_PACKETS + 1)
    ]
    end = struct.pack("!BBH", event, 0x80 | EVENT_VOLUME, SAMPLES_PER_PACKET * DIGIT_PACKETS)
    return tone + [(end, False)] * END_PACKETS


class AudioPassthrough(RtpRelay):
    """One call's G.711 audio, relayed both ways; digits read and written in the media."""

    kind = "audio"
    sole_stream = True  # a passed-through call offers no video

    def __init__(self, rtp: socket.socket, rtcp: socket.socket, tasks: Tasks) -> None:
        super().__init__(rtp, rtcp, tasks)
        self.codec = "PCMU"  # the G.711 codec both legs carry
        self.on_digit: Callable[[str], None] = lambda digit: None
        self._events = TelephoneEvents(lambda digit: self.on_digit(digit))
        #: what takes the place of the browser's next packets: an event's payload and
        #: marker, None to let the audio through (the pause between two digits)
        self._digits: deque[tuple[bytes, bool] | None] = deque()
        self._event_start = 0  # the RTP timestamp of the event being sent

    @property
    def browser_encodings(self) -> tuple[str, ...]:
        """What the browser leg carries (attach's encodings)."""
        return (self.codec,)

    def aim(self, far: tuple[str, int]) -> None:
        """The far end moved its audio (a re-INVITE): send there from now on."""
        if self.far is not None:
            self.far = far

    def send_to_sip(self, packet: RtpPacket) -> None:
        step = self._digits.popleft() if self._digits else None
        if step is not None:  # a digit's packet goes in this audio packet's place
            payload, first = step
            if first:
                self._event_start = packet.timestamp
            packet.payload_type, packet.payload = self._sip_pts[TELEPHONE_EVENT], payload
            packet.marker, packet.timestamp = int(first), self._event_start
        super().send_to_sip(packet)

    def on_sip_packet(self, data: bytes) -> None:
        event_pt = self._sip_pts.get(TELEPHONE_EVENT)
        if event_pt is not None and data[1] & 0x7F == event_pt:
            self._events.packet(RtpPacket.parse(data))

    def send_digits(self, digits: str) -> None:
        """RFC 4733 events toward the SIP end, after the digits asked for before: each takes
        the place of the browser's next audio packets, as a browser's RTCDTMFSender does
        (they go when the browser's audio does)."""
        if TELEPHONE_EVENT not in self._sip_pts:
            raise RuntimeError("the far end took no telephone-event: send the digits with method 'info'")
        steps = [step for digit in digits for step in digit_packets(digit)]  # a bad digit fails here
        for i, (payload, first) in enumerate(steps):
            if first and i:
                self._digits.extend([None] * DIGIT_GAP_PACKETS)
            self._digits.append((payload, first))
        self._digits.extend([None] * DIGIT_GAP_PACKETS)
