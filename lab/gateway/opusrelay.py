"""Opus on the browser leg, G.711 on the SIP leg, transcoded packet by packet as each comes:
the gateway's default call, carried like a passed-through one (lab.gateway.passthrough) with
a codec in the middle, past pjsua's conference bridge and aiortc's media.

On the bridged way (lab.gateway.bridge) an Opus call cost 15-17 % of a core and held the
browser's audio 51 ms in the gateway: aiortc's jitter buffer, its decoder thread, a resampler
to the bridge's rate, the FIFO the bridge clock drains, the clock's tick, pjsua's encoder;
toward the browser, the clock's frame handed to the loop, aiortc's encoder in a thread of
its executor (bench/capacity.py, bench/hops.py). Here the loop does it all as a packet comes:

- Browser -> SIP: libopus decodes straight to 8 kHz (no resampler) and the samples go out
  as one G.711 packet of the gateway's own stream: its SSRC, sequence numbers without gaps,
  timestamps the browser's at 8 kHz. A gap in the browser's sequence numbers is concealed as
  the lab's aiortc decoder conceals it (FEC from the packet after it, PLC before that), each
  lost packet's audio in a packet of its own; a packet older than one already decoded is
  dropped. There is no jitter buffer here: the SIP end's is the one on the way, as with the
  passthrough. The browser's RFC 4733 digits (telephone-event/48000) are read and go on in
  the SIP stream, in place of audio packets (AudioPassthrough.send_digits).
- SIP -> browser: libopus encodes each G.711 packet from 8 kHz as it comes, at the bitrate
  and FEC the browser's SDP asks for; the packet keeps its sequence number, and its
  timestamp times six is on Opus's 48 kHz clock (mod 2**32 that stays continuous).

The gateway takes it for a call that can (GatewayCall._relayed_audio): outgoing, audio only,
the browser chose Opus, the SIP leg is G.711 (a narrowband lab, no other SIP codec asked);
not when the call asks the gateway for a jitter buffer or puts a network on the browser leg,
since those are experiments on aiortc's jitter buffer, which stays on the bridged way.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from aiortc.rtp import RtpPacket

from lab import g711
from lab.codecs import MAX_CONCEALED, OpusDecoder, PcmOpusEncoder
from lab.gateway.passthrough import PASSTHROUGH_CODECS, TELEPHONE_EVENT, AudioPassthrough
from lab.gateway.relay import Counts
from lab.tasks import Tasks
from lab.webrtc import AIORTC_OPUS_BITRATE, TelephoneEvents

SIP_RATE = 8000  # G.711's
OPUS_CLOCK_STEP = 6  # 48 kHz RTP ticks per 8 kHz sample
_HALF_SEQ = 1 << 15


@dataclass
class TranscodedCounts(Counts):
    concealed: int = 0  # browser packets lost, their audio concealed (FEC or PLC)
    late: int = 0  # browser packets after their place was decoded (or twice): dropped
    unencodable: int = 0  # SIP packets of a length Opus has no frame for: dropped


class OpusRelay(AudioPassthrough):
    """One call's audio: Opus with the browser, G.711 (PCMU or PCMA, as the far end
    answers) with the SIP end, transcoded a packet at a time."""

    counts: TranscodedCounts

    def __init__(self, rtp: socket.socket, rtcp: socket.socket, tasks: Tasks) -> None:
        super().__init__(rtp, rtcp, tasks)
        #: toward the browser, what its SDP asks (maxaveragebitrate, useinbandfec)
        self.opus_bitrate = AIORTC_OPUS_BITRATE
        self.opus_fec = False
        self._decoder = OpusDecoder(SIP_RATE)
        self._encoder: PcmOpusEncoder | None = None
        self._browser_digits = TelephoneEvents(self._browser_digit)
        self.on_digit_refused: Callable[[str], None] = lambda reason: None
        self._event_pt: int | None = None  # the browser leg's telephone-event
        self._last_seq: int | None = None  # the browser's last packet decoded (or event read)
        self._first_timestamp: int | None = None  # the browser's first, and the SIP stream's
        self._timestamp_base = random.getrandbits(32)
        self._ssrc = random.getrandbits(32)  # the gateway's stream toward the SIP end
        self._seq = random.getrandbits(16)

    def new_counts(self) -> TranscodedCounts:
        return TranscodedCounts()

    @property
    def browser_encodings(self) -> tuple[str, ...]:
        return ("opus", TELEPHONE_EVENT)

    def sip_encoding(self, browser_encoding: str) -> str:
        return self.codec.lower() if browser_encoding == "opus" else browser_encoding

    async def start(self, far: tuple[str, int], sip_pts: Mapping[str, int]) -> None:
        """As the relay's, the G.711 codec the far end answered with (the first it lists)."""
        answered = [name for name in sip_pts if name.upper() in PASSTHROUGH_CODECS]
        if answered:
            self.codec = answered[0].upper()
        await super().start(far, sip_pts)

    def negotiated(self) -> None:
        super().negotiated()
        assert self.transceiver is not None
        events = [c for c in self.transceiver._codecs if c.mimeType.lower() == "audio/telephone-event"]
        self._event_pt = events[0].payloadType if events else None

    # browser -> SIP ------------------------------------------------------------------
    def relay_browser_packet(self, packet: RtpPacket) -> None:
        if self.far is None:
            return
        if packet.payload_type == self._event_pt:
            if self._gap_before(packet.sequence_number) >= 0:
                self._browser_digits.packet(packet)
            return
        sip_pt = self._to_sip.get(packet.payload_type)
        if sip_pt is None:
            return
        lost = self._gap_before(packet.sequence_number)
        if lost < 0:
            self.counts.late += 1
            return
        if self.browser_ssrc is None:
            self.browser_ssrc = packet.ssrc
        timestamp = self._sip_timestamp(packet.timestamp)
        if 0 < lost <= MAX_CONCEALED:  # more: a new stream, not loss
            concealed = self._decoder.conceal(lost, packet.payload)
            step = len(concealed) // lost
            for i in range(lost):
                before = timestamp - (lost - i) * step
                self._send_pcm(concealed[i * step : (i + 1) * step], sip_pt, before, False)
            self.counts.concealed += lost
        self._send_pcm(self._decoder.decode(packet.payload), sip_pt, timestamp, bool(packet.marker))

    def _gap_before(self, seq: int) -> int:
        """How many of the browser's packets went missing before `seq`, which becomes the
        last one taken; -1 for a packet late or twice (not taken)."""
        if self._last_seq is None:
            self._last_seq = seq
            return 0
        gap = (seq - self._last_seq - 1) & 0xFFFF
        if gap >= _HALF_SEQ:
            return -1
        self._last_seq = seq
        return gap

    def _sip_timestamp(self, browser_timestamp: int) -> int:
        if self._first_timestamp is None:
            self._first_timestamp = browser_timestamp
        elapsed = ((browser_timestamp - self._first_timestamp) & 0xFFFFFFFF) // OPUS_CLOCK_STEP
        return (self._timestamp_base + elapsed) & 0xFFFFFFFF

    def _send_pcm(self, pcm: np.ndarray, sip_pt: int, timestamp: int, marker: bool) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        packet = RtpPacket(
            payload_type=sip_pt,
            marker=int(marker),
            sequence_number=self._seq,
            timestamp=timestamp & 0xFFFFFFFF,
            ssrc=self._ssrc,
            payload=g711.encode(self.codec.lower(), pcm),
        )
        self.send_to_sip(packet)

    def _browser_digit(self, digit: str) -> None:
        try:
            self.send_digits(digit)
        except RuntimeError as exc:
            self.on_digit_refused(str(exc))

    # SIP -> browser ------------------------------------------------------------------
    def for_browser(self, data: bytes, browser_pt: int) -> bytes | None:
        assert self.transceiver is not None
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.counts.dropped += 1
            return None
        pcm = g711.decode(self.codec.lower(), packet.payload)
        if self._encoder is None:
            self._encoder = PcmOpusEncoder(SIP_RATE, self.opus_bitrate, self.opus_fec)
        if not self._encoder.encodes(len(pcm)):
            self.counts.unencodable += 1
            return None
        timestamp = (packet.timestamp * OPUS_CLOCK_STEP) & 0xFFFFFFFF
        head = struct.pack(
            "!BBHII",
            0x80,
            packet.marker << 7 | browser_pt,
            packet.sequence_number,
            timestamp,
            self.transceiver.sender._ssrc,
        )
        return head + self._encoder.encode(pcm)
