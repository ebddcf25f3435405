"""aiortc as the lab uses it: loopback-only ICE, a short audio jitter hold, and the audio
tracks both WebRTC peers (the browser-style client and the gateway) are built from."""

from __future__ import annotations

import asyncio
import ctypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    rtcrtpreceiver,
    rtcrtpsender,
)
from aiortc import codecs as aiortc_codecs
from aiortc.codecs import get_decoder, get_encoder
from aiortc.codecs.base import Decoder, Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from lab.audio import RATE, write_wav
from lab.codecs import ConcealingDecoder, OpusEncoder, PromptOpusEncoder, av_library, pcm_frame
from lab.jitterbuffer import BoundedJitterBuffer
from lab.jitterspec import DEFAULT_SPEC, JitterBufferSpec

#: lab.config.BROWSER_CODECS -> aiortc's mime types
CODECS = {"opus": "audio/opus", "pcmu": "audio/PCMU", "pcma": "audio/PCMA", "g722": "audio/G722"}
OPUS_BITRATES = range(6000, 510001)  # bit/s, what libopus takes (RFC 7587 maxaveragebitrate)
AIORTC_OPUS_BITRATE = 96000  # aiortc's own encoder, stereo


@dataclass(frozen=True)
class BrowserAudio:
    """The browser leg's audio for one call: codec, Opus bitrate and in-band FEC, and the
    jitter buffer of both aiortc receivers (the client's and the gateway's).

    Opus bitrate and FEC go where a browser puts them, in the SDP (a=fmtp maxaveragebitrate,
    useinbandfec, RFC 7587): each side's encoder does what the other side's SDP asks. The
    gateway answers with the client's values, so both directions are coded alike. None:
    aiortc's encoder as it is (96 kbit/s stereo, no FEC).
    """

    codec: str = "opus"
    opus_bitrate: int | None = None  # bit/s
    opus_fec: bool = False
    jitter_buffer: JitterBufferSpec = field(default=DEFAULT_SPEC)

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r}: choose one of {', '.join(CODECS)}")
        if self.opus_bitrate is not None and self.opus_bitrate not in OPUS_BITRATES:
            raise ValueError(f"Opus bitrate {self.opus_bitrate} bit/s: from 6000 to 510000")
        if self.codec != "opus" and (self.opus_bitrate is not None or self.opus_fec):
            raise ValueError(f"Opus bitrate and FEC are Opus settings; the codec is {self.codec}")

    def describe(self) -> dict[str, Any]:
        """As the call's JSON says it."""
        return {
            "codec": self.codec,
            "opus_bitrate": self.opus_bitrate,
            "opus_fec": self.opus_fec,
            "jitter_buffer": str(self.jitter_buffer),
        }

    def opus_fmtp(self) -> dict[str, int]:
        """What this side asks the far end's Opus encoder for."""
        fmtp = {"useinbandfec": 1} if self.opus_fec else {}
        if self.opus_bitrate is not None:
            fmtp["maxaveragebitrate"] = self.opus_bitrate
        return fmtp


def browser_audio(codec: str | None, audio: BrowserAudio | None) -> BrowserAudio:
    """`audio`, or the defaults for `codec` (a shorthand the API keeps); not both at odds."""
    if audio is None:
        return BrowserAudio(codec or "opus")
    if codec is not None and codec != audio.codec:
        raise ValueError(f"codec {codec!r} and audio's codec {audio.codec!r}: give one")
    return audio


def _audio_jitter_buffer(capacity: int, prefetch: int = 0, is_video: bool = False) -> Any:
    if is_video:
        return JitterBuffer(capacity=capacity, prefetch=prefetch, is_video=True)
    return BoundedJitterBuffer(DEFAULT_SPEC)


def _concealing_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    if codec.mimeType.lower().startswith("audio/"):
        return ConcealingDecoder(codec)
    return get_decoder(codec)


def _prompt_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    if codec.mimeType.lower() == "audio/opus":
        return PromptOpusEncoder()
    return get_encoder(codec)


_audio_ssrcs: set[int] = set()  # this process's audio senders
_talkspurt_started: set[int] = set()  # ... that have sent their first packet


class _AudioMarksTalkspurts(RtpPacket):
    """aiortc sets the marker bit on every audio packet (for it, "the last packet of a
    frame", which is right for video). RFC 3551 section 4.1 marks only the first packet of
    a talkspurt, and Wireshark leaves marked packets out of delta and jitter, so the
    browser leg had no jitter at all. The lab suppresses no silence: one talkspurt, one
    marked packet per audio stream."""

    def serialize(self, *args: Any, **kwargs: Any) -> bytes:
        if self.ssrc in _audio_ssrcs:
            self.marker = int(self.ssrc not in _talkspurt_started)
            _talkspurt_started.add(self.ssrc)
        return super().serialize(*args, **kwargs)  # type: ignore[no-any-return]


def _remember_audio_sender(init: Callable[..., None]) -> Callable[..., None]:
    def remembering(sender: RTCRtpSender, *args: object, **kwargs: object) -> None:
        init(sender, *args, **kwargs)
        if sender.kind == "audio":
            _audio_ssrcs.add(sender._ssrc)

    return remembering


def _ffmpeg_on_the_callers_thread() -> None:
    """FFmpeg sizes the thread pool of each filter graph by the CPU count, so every
    av.AudioResampler (aiortc's encoders have one, the lab's tracks one each) started 2
    threads here and kept them for its life: the gateway grew 2 threads a call. 20 ms audio
    frames gain nothing from threads; av_cpu_force_count(1) runs them on the caller's."""
    path = av_library("avutil")
    if path is not None:
        ctypes.CDLL(path).av_cpu_force_count(1)


#: what a browser's RTCDTMFSender sends with Opus (RFC 4733; Chromium offers /48000 and /8000)
TELEPHONE_EVENT = RTCRtpCodecParameters(
    mimeType="audio/telephone-event", clockRate=48000, channels=1, payloadType=126
)
EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 section 3.2: events 0-15


class TelephoneEvents:
    """RFC 4733 events arriving on one receiver: `on_digit` once per digit, at its first
    packet (an event is sent in several packets, the end three times, all with its start's
    RTP timestamp)."""

    def __init__(self, on_digit: Callable[[str], None]) -> None:
        self.on_digit = on_digit
        self._timestamp: int | None = None

    def packet(self, packet: RtpPacket) -> None:
        if len(packet.payload) < 4 or packet.timestamp == self._timestamp:
            return
        self._timestamp = packet.timestamp
        if packet.payload[0] < len(EVENT_DIGITS):
            self.on_digit(EVENT_DIGITS[packet.payload[0]])


def on_telephone_events(pc: RTCPeerConnection, on_digit: Callable[[str], None]) -> None:
    """`on_digit(digit)` for the RFC 4733 events the far end sends on `pc`'s audio; after
    setRemoteDescription (which makes the receivers)."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.receiver._lab_telephone_events = TelephoneEvents(on_digit)  # type: ignore[attr-defined]


def _events_apart(handle: Callable[..., Any]) -> Callable[..., Any]:
    """aiortc has no telephone-event: it would hand the events to the audio decoder. They go
    to the receiver's TelephoneEvents instead; the audio jitter buffer sees their sequence
    numbers as lost packets (the sender sends no audio meanwhile)."""

    async def handling(receiver: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = receiver._RTCRtpReceiver__codecs.get(packet.payload_type)  # type: ignore[attr-defined]
        if codec is not None and codec.mimeType.lower() == "audio/telephone-event":
            events = getattr(receiver, "_lab_telephone_events", None)
            if events is not None:
                events.packet(packet)
            return
        await handle(receiver, packet, arrival_time_ms)

    handling.lab_events_apart = True  # type: ignore[attr-defined]
    return handling


def _checks_from_loopback_only(received: Callable[..., None]) -> Callable[..., None]:
    """A real browser sends its ICE checks from every interface it has, also to a loopback
    candidate (Chromium: from the machine's LAN address to 127.0.0.2, which the kernel
    delivers). Answered, such a check becomes a peer-reflexive candidate the gateway would
    send media to: it is not answered, so only a loopback pair can succeed."""

    def receiving(
        connection: aioice.ice.Connection, message: Any, addr: tuple[str, int], protocol: Any
    ) -> None:
        if addr[0].startswith("127."):
            received(connection, message, addr, protocol)

    receiving.lab_loopback_only = True  # type: ignore[attr-defined]
    return receiving


def configure(host: str) -> None:
    """Make this process's WebRTC peers use `host` only (no other interface, no STUN, no check
    from outside 127.0.0.0/8 answered), give audio receivers the bounded jitter buffer and
    decoders that conceal lost packets (Opus with FEC), Opus senders an encoder that sends a
    frame as soon as it has it, take RFC 4733 events apart from the audio, mark audio
    talkspurts as RFC 3551 says, and keep FFmpeg on one thread.

    aioice never offers 127.0.0.1 on its own and, left alone, would offer every interface.
    """
    _ffmpeg_on_the_callers_thread()
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [host]
    if not hasattr(aioice.ice.Connection.request_received, "lab_loopback_only"):
        aioice.ice.Connection.request_received = _checks_from_loopback_only(  # type: ignore[method-assign]
            aioice.ice.Connection.request_received
        )
    rtcrtpreceiver.JitterBuffer = _audio_jitter_buffer  # type: ignore[assignment,misc]
    rtcrtpreceiver.get_decoder = _concealing_decoder
    rtcrtpsender.get_encoder = _prompt_encoder
    if TELEPHONE_EVENT not in aiortc_codecs.CODECS["audio"]:  # answered to a browser that offers it
        aiortc_codecs.CODECS["audio"].append(TELEPHONE_EVENT)
    if not hasattr(RTCRtpReceiver._handle_rtp_packet, "lab_events_apart"):
        RTCRtpReceiver._handle_rtp_packet = _events_apart(RTCRtpReceiver._handle_rtp_packet)  # type: ignore[method-assign]
    if rtcrtpsender.RtpPacket is not _AudioMarksTalkspurts:
        rtcrtpsender.RtpPacket = _AudioMarksTalkspurts  # type: ignore[misc]
        RTCRtpSender.__init__ = _remember_audio_sender(RTCRtpSender.__init__)  # type: ignore[method-assign]


def audio_encodings() -> list[str]:
    """The audio codecs this process's WebRTC peers can carry, by encoding name (opus, pcmu)."""
    return [encoding(c.mimeType) for c in aiortc_codecs.CODECS["audio"]]


def encoding(mime_type: str) -> str:
    """audio/PCMU -> pcmu: the name SDPs give a codec."""
    return mime_type.rpartition("/")[2].lower()


def peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


_CANDIDATE_RE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) [^\n]*\n?", re.MULTILINE)


def loopback_only(sdp: str) -> str:
    """`sdp` without its ICE candidates outside 127.0.0.0/8: a real browser offers every
    interface of the machine (and ::1), and the lab sends to loopback addresses only."""
    return _CANDIDATE_RE.sub(lambda m: m[0] if m[1].startswith("127.") else "", sdp)


def prefer_codec(pc: RTCPeerConnection, codec: str) -> None:
    """Offer only `codec` (opus, pcmu, pcma, g722) on every audio transceiver."""
    try:
        mime = CODECS[codec.lower()]
    except KeyError:
        raise ValueError(f"codec {codec!r}: choose one of {', '.join(CODECS)}") from None
    caps = RTCRtpSender.getCapabilities("audio")
    chosen = [c for c in caps.codecs if c.mimeType.lower() == mime.lower()]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.setCodecPreferences(chosen)


_FMTP_RE = re.compile(r"^a=fmtp:(\d+) (.*)$", re.MULTILINE)
_RTPMAP_RE = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.MULTILINE | re.IGNORECASE)


def opus_fmtp(sdp: str) -> dict[str, int]:
    """The numeric parameters of the Opus a=fmtp line in `sdp` (empty: no Opus, no fmtp)."""
    rtpmap = _RTPMAP_RE.search(sdp)
    if rtpmap is None:
        return {}
    for pt, params in _FMTP_RE.findall(sdp):
        if pt == rtpmap[1]:
            pairs = (p.strip().partition("=") for p in params.split(";"))
            return {k: int(v) for k, _, v in pairs if v.strip().isdigit()}
    return {}


def with_opus_fmtp(sdp: str, fmtp: dict[str, int]) -> str:
    """`sdp` whose Opus a=fmtp line also says `fmtp` (aiortc writes none for Opus). Set
    before setLocalDescription: aiortc keeps the description it is given."""
    rtpmap = _RTPMAP_RE.search(sdp)
    if rtpmap is None or not fmtp:
        return sdp
    line = f"a=fmtp:{rtpmap[1]} " + ";".join(f"{k}={v}" for k, v in (opus_fmtp(sdp) | fmtp).items())
    existing = re.search(rf"^a=fmtp:{rtpmap[1]} [^\r\n]*", sdp, re.MULTILINE)
    if existing is not None:
        return sdp[: existing.start()] + line + sdp[existing.end() :]
    end = sdp.index("\n", rtpmap.end()) + 1
    return sdp[:end] + line + "\r\n" + sdp[end:]


# aiortc has no per-call hook for these: its receiver makes its jitter buffer when it is
# made, its sender its encoder at the first frame (only when it has none). So the lab sets
# the private attributes, before media flows.


def use_jitter_buffer(pc: RTCPeerConnection, spec: JitterBufferSpec) -> None:
    """Every audio receiver of `pc` gets a jitter buffer of `spec`; before media flows."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.receiver._RTCRtpReceiver__jitter_buffer = BoundedJitterBuffer(spec)  # type: ignore[attr-defined]


def jitter_buffers(pc: RTCPeerConnection) -> list[BoundedJitterBuffer]:
    return [
        t.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        for t in pc.getTransceivers()
        if t.kind == "audio" and isinstance(t.receiver._RTCRtpReceiver__jitter_buffer, BoundedJitterBuffer)  # type: ignore[attr-defined]
    ]


def encode_as_asked(pc: RTCPeerConnection) -> None:
    """Give each Opus sender of `pc` the bitrate and FEC the far end's SDP asks for; after
    both descriptions are set, before media flows (aiortc makes its encoder at the first
    frame, and only if it has none)."""
    remote = pc.remoteDescription
    fmtp = opus_fmtp(remote.sdp) if remote is not None else {}
    if "maxaveragebitrate" not in fmtp and not fmtp.get("useinbandfec"):
        return  # nothing asked: aiortc's encoder as it is
    for transceiver in pc.getTransceivers():
        codecs = transceiver._codecs
        if transceiver.kind == "audio" and codecs and codecs[0].mimeType.lower() == "audio/opus":
            bitrate = fmtp.get("maxaveragebitrate", AIORTC_OPUS_BITRATE)
            encoder = OpusEncoder(bitrate, fec=bool(fmtp.get("useinbandfec")))
            transceiver.sender._RTCRtpSender__encoder = encoder  # type: ignore[attr-defined]


class PromptTrack(MediaStreamTrack):
    """A microphone that speaks a prompt (at `rate`) in a loop, paced in real time; keeps
    what it sent."""

    kind = "audio"

    def __init__(self, samples: np.ndarray, rate: int = RATE) -> None:
        super().__init__()
        self.rate = rate
        self._frame = rate // 50  # 20 ms
        self._pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
        self._pos = 0
        self._pts = 0
        self._start: float | None = None
        self.sent: list[np.ndarray] = []

    @property
    def started_at(self) -> float | None:
        """time.monotonic() of the first sample sent."""
        return self._start

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._frame
            wait = self._start + self._pts / self.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        idx = (self._pos + np.arange(self._frame)) % len(self._pcm)
        self._pos = (self._pos + self._frame) % len(self._pcm)
        chunk = self._pcm[idx]
        self.sent.append(chunk)
        return pcm_frame(chunk, self.rate, self._pts)

    def save(self, path: Path) -> None:
        pcm = np.concatenate(self.sent) if self.sent else np.zeros(0, dtype="<i2")
        write_wav(path, pcm.astype(np.float32) / 32768.0, self.rate)


class ColourBarCamera(VideoStreamTrack):
    """A camera that films colour bars with a bar moving across them, 30 frames a second:
    a picture every video codec has to work on, different in every frame."""

    WIDTH, HEIGHT = 320, 240
    BARS = np.array(
        [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
        dtype=np.uint8,
    )

    def __init__(self) -> None:
        super().__init__()
        columns = np.arange(self.WIDTH) * len(self.BARS) // self.WIDTH
        self._bars = np.broadcast_to(self.BARS[columns], (self.HEIGHT, self.WIDTH, 3))
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = self._bars.copy()
        x = (self.frames * 4) % self.WIDTH
        image[:, x : x + 8] = 255
        self.frames += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class QueueTrack(MediaStreamTrack):
    """Audio pushed in 20 ms PCM frames at `rate` from another clock (the SIP side's bridge)."""

    kind = "audio"
    MAX_QUEUED = 3  # frames; older audio is dropped rather than delayed

    def __init__(self, rate: int) -> None:
        super().__init__()
        self.rate = rate
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._pts = 0
        self.dropped = 0  # frames the sender fell behind on, for the gateway's log

    def push(self, pcm: bytes) -> None:
        """Loop thread only."""
        while self._queue.qsize() >= self.MAX_QUEUED:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(pcm)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await self._queue.get()
        frame = pcm_frame(np.frombuffer(pcm, dtype="<i2"), self.rate, self._pts)
        self._pts += len(pcm) // 2
        return frame


async def drain_track(track: MediaStreamTrack, sink: Callable[[bytes], None], rate: int) -> None:
    """Feed `sink` with the track's audio as mono 16-bit PCM at `rate` until the track ends."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        assert isinstance(frame, av.AudioFrame)
        for out in resampler.resample(frame):
            sink(bytes(out.planes[0])[: out.samples * 2])


#: A pause in a track longer than this is a hold (no RTP comes), not a late packet: the
#: recording gets it as silence.
RECORDING_GAP_S = 0.2


class Recording:
    """PCM at `rate` collected from a track, saved as WAV; a pause in the track (a hold) is
    recorded as silence, so the file keeps the call's timeline from the first sample heard."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        self.chunks: list[bytes] = []
        self.samples = 0
        #: time.monotonic() each chunk was heard: the WAV keeps no gap where the receiver
        #: held audio back, these do (lab.analysis.latency.ear_delays)
        self.arrivals: list[float] = []
        self._told_start: float | None = None

    @property
    def started_at(self) -> float | None:
        """time.monotonic() the first sample was heard, had every chunk come on time: the
        median over chunks of (heard - its place in the recording). Nothing paces this
        recording, so a late first chunk and the burst that catches up after it would
        otherwise set the whole call's delay (lab.audio.one_way_latency)."""
        if self._told_start is not None:
            return self._told_start
        if not self.arrivals:
            return None
        starts = np.cumsum([0] + [len(c) // 2 for c in self.chunks[:-1]]) / self.rate
        return float(np.median(np.asarray(self.arrivals) - starts))

    @started_at.setter
    def started_at(self, t0: float) -> None:
        """When a recording made elsewhere (the Phone page's, in the browser) started."""
        self._told_start = t0

    def add(self, pcm: bytes) -> None:
        now = time.monotonic()
        if self.arrivals:
            behind = int((now - self.arrivals[0]) * self.rate) - self.samples
            if behind > RECORDING_GAP_S * self.rate:  # a hold: its silence, heard when it was due
                self.arrivals.append(self.arrivals[0] + self.samples / self.rate)
                self.chunks.append(bytes(2 * behind))
                self.samples += behind
        self.arrivals.append(now)
        self.chunks.append(pcm)
        self.samples += len(pcm) // 2

    def save(self, path: Path) -> None:
        pcm = np.frombuffer(b"".join(self.chunks), dtype="<i2")
        write_wav(path, pcm.astype(np.float32) / 32768.0, self.rate)
