"""The browser leg's audio codecs as the lab runs them in aiortc: an Opus encoder that takes
a bitrate and in-band FEC, and decoders that conceal the packets the jitter buffer declared
lost, so the audio keeps its timeline (aiortc's own decoders skip the gap).

Opus is decoded with libopus itself (ctypes), because FFmpeg's libopus decoder cannot
decode FEC: the packet after a loss carries a coarse copy of the lost one (LBRR, RFC 6716
section 2.1.7), which `opus_decode(..., decode_fec=1)` rebuilds. Several lost packets: PLC
for all but the last, FEC for the last. The other codecs get silence for a lost packet.

The gateway's Opus relay (lab.gateway.opusrelay) codes a packet at a time with libopus
itself, at the SIP leg's 8 kHz and no resampler: OpusDecoder(rate) and PcmOpusEncoder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fractions
import glob
import os

import av
import numpy as np
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av.frame import Frame

from lab.jitterbuffer import BoundedJitterBuffer, PlayedFrame, PlayedFrames
from lab.jitterspec import DEFAULT_SPEC, JitterBufferSpec

OPUS_RATE = 48000
OPUS_MAX_FRAME = OPUS_RATE * 120 // 1000  # samples: the longest Opus packet
#: The loss the encoder is told to expect when FEC is on: libopus sizes its LBRR copy by it
#: and sends none when it is 0.
FEC_EXPECTED_LOSS_PERCENT = 10
MAX_CONCEALED = 50  # packets (1 s): beyond that a gap is a new stream, not loss
OPUS_PT = 111  # as browsers number it
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=OPUS_PT)


def av_library(stem: str) -> str | None:
    """The shared library PyAV's wheel bundles (libavutil, libopus, ...), else the system's."""
    bundled = glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", f"lib{stem}*"))
    return bundled[0] if bundled else ctypes.util.find_library(stem)


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    frame = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = like.sample_rate
    frame.time_base = like.time_base
    frame.pts = None if like.pts is None else like.pts - samples
    return frame


def prime(resampler: av.AudioResampler, first: av.AudioFrame, rate: int) -> None:
    """Feed `resampler` (which hands out whole frame_size frames at `rate`) the silence its
    filter holds back, before `first`: then every 20 ms frame in gives a 20 ms frame out.
    Unprimed, the first frame in falls a few samples short of a whole one and every frame
    comes out one frame (20 ms) after it went in."""
    probe = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out = sum(f.samples for f in probe.resample(_silence(first, first.samples)))
    held = first.samples * rate // first.sample_rate - out  # at `rate`
    if held > 0:
        resampler.resample(_silence(first, -(-held * first.sample_rate // rate)))


class PromptOpusEncoder(AiortcOpusEncoder):
    """aiortc's Opus encoder without the frame its resampler holds back (lab.codecs.prime):
    a 20 ms frame in is a packet out at once (aiortc's: 22 ms from a frame in to its packet
    on the wire, at 8 kHz, bench/hops.py)."""

    _primed = False

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if not self._primed and isinstance(frame, av.AudioFrame):
            self._primed = True
            prime(self.resampler, frame, OPUS_RATE)
        return super().encode(frame, force_keyframe)  # type: ignore[no-any-return]


class OpusEncoder(PromptOpusEncoder):
    """aiortc's Opus encoder, mono, at `bitrate` bit/s, with in-band FEC when asked: what
    the receiver's SDP asks for with maxaveragebitrate and useinbandfec (RFC 7587)."""

    def __init__(self, bitrate: int, fec: bool) -> None:
        super().__init__()  # its codec context opens at the first frame: still settable
        self.codec.bit_rate = bitrate
        self.codec.layout = "mono"
        self.codec.options = {
            "application": "voip",
            "fec": "1" if fec else "0",
            "packet_loss": str(FEC_EXPECTED_LOSS_PERCENT if fec else 0),
        }
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE, frame_size=960)


_opus: ctypes.CDLL | None = None


def _libopus() -> ctypes.CDLL:
    global _opus
    if _opus is None:
        path = av_library("opus")
        if path is None:
            raise RuntimeError("libopus not found: neither PyAV's wheel nor the system has it")
        lib = ctypes.CDLL(path)
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_packet_get_nb_samples.restype = ctypes.c_int
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [
            ctypes.c_int32,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_encode.restype = ctypes.c_int32
        lib.opus_encode.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int32,
        ]
        lib.opus_encoder_ctl.restype = ctypes.c_int  # variadic: its arguments are given as c_int
        _opus = lib
    return _opus


class OpusDecoder:
    """libopus, mono at `rate` (48 kHz, or 8-24 kHz: libopus decodes to it at once): decode,
    conceal with FEC, conceal with PLC."""

    def __init__(self, rate: int = OPUS_RATE) -> None:
        self._lib = _libopus()
        self.rate = rate
        error = ctypes.c_int(0)
        self._state = self._lib.opus_decoder_create(rate, 1, ctypes.byref(error))
        if error.value != 0 or not self._state:
            raise RuntimeError(f"opus_decoder_create failed ({error.value})")
        self._pcm = np.zeros(OPUS_MAX_FRAME, dtype=np.int16)
        self._pcm_pointer = self._pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))  # made once: it costs
        self.fec_frames = 0  # lost packets rebuilt from the next packet's FEC
        self.plc_frames = 0  # lost packets concealed without it
        self.bad_packets = 0  # packets libopus could not decode, concealed

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            self._lib.opus_decoder_destroy(self._state)

    def _decode(self, data: bytes | None, samples: int, fec: bool) -> np.ndarray:
        n = self._lib.opus_decode(
            self._state, data, len(data) if data else 0, self._pcm_pointer, samples, int(fec)
        )
        if n < 0 and data is not None:
            # A packet libopus cannot read is a lost one. Raising would end aiortc's decoder
            # thread (it catches FFmpeg's errors only), and with it the call's audio.
            self.bad_packets += 1
            return self._decode(None, self.rate // 50, fec=False)
        return self._pcm[: max(n, 0)].copy()

    def samples_in(self, data: bytes) -> int:
        n = self._lib.opus_packet_get_nb_samples(data, len(data), self.rate)
        return n if n > 0 else self.rate // 50

    def conceal(self, lost: int, following: bytes) -> np.ndarray:
        """The audio of `lost` packets just before the packet `following`."""
        size = self.samples_in(following)
        parts = [self._decode(None, size, fec=False) for _ in range(lost - 1)]
        parts.append(self._decode(following, size, fec=True))
        self.plc_frames += lost - 1
        self.fec_frames += 1
        return np.concatenate(parts)

    def decode(self, data: bytes) -> np.ndarray:
        return self._decode(data, OPUS_MAX_FRAME, fec=False)


_OPUS_APPLICATION_VOIP = 2048
_OPUS_SET_BITRATE = 4002
_OPUS_SET_INBAND_FEC = 4012
_OPUS_SET_PACKET_LOSS_PERC = 4014
#: libopus' guide for the output buffer (opus_encode's documentation)
_OPUS_MAX_PACKET = 4000
#: frame lengths libopus encodes, in 1/400 s (2.5 ms) steps
_OPUS_FRAME_STEPS = (1, 2, 4, 8, 16, 24)


class PcmOpusEncoder:
    """libopus, mono, 16-bit samples at `rate` (8-48 kHz: libopus takes them as they are,
    no resampler) to Opus packets, at `bitrate` bit/s with in-band FEC when asked; the
    application is VoIP, as in the lab's aiortc encoder (OpusEncoder)."""

    def __init__(self, rate: int, bitrate: int, fec: bool) -> None:
        self._lib = _libopus()
        self.rate = rate
        error = ctypes.c_int(0)
        self._state = self._lib.opus_encoder_create(rate, 1, _OPUS_APPLICATION_VOIP, ctypes.byref(error))
        if error.value != 0 or not self._state:
            raise RuntimeError(f"opus_encoder_create at {rate} Hz failed ({error.value})")
        for request, value in (
            (_OPUS_SET_BITRATE, bitrate),
            (_OPUS_SET_INBAND_FEC, int(fec)),
            (_OPUS_SET_PACKET_LOSS_PERC, FEC_EXPECTED_LOSS_PERCENT if fec else 0),
        ):
            status = self._lib.opus_encoder_ctl(
                ctypes.c_void_p(self._state), ctypes.c_int(request), ctypes.c_int(value)
            )
            if status != 0:
                raise RuntimeError(f"opus_encoder_ctl({request}, {value}) failed ({status})")
        self._out = ctypes.create_string_buffer(_OPUS_MAX_PACKET)
        self._frame_lengths = {step * rate // 400 for step in _OPUS_FRAME_STEPS if step * rate % 400 == 0}
        self._pcm = np.zeros(rate * 60 // 1000, dtype=np.int16)  # the longest frame
        self._pcm_pointer = self._pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            self._lib.opus_encoder_destroy(self._state)

    def encodes(self, samples: int) -> bool:
        """Whether a frame of `samples` is one libopus encodes (2.5 to 60 ms)."""
        return samples in self._frame_lengths

    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame (a length `encodes` takes) of 16-bit samples as an Opus packet."""
        self._pcm[: len(pcm)] = pcm
        n = self._lib.opus_encode(self._state, self._pcm_pointer, len(pcm), self._out, _OPUS_MAX_PACKET)
        if n < 0:
            raise ValueError(f"opus_encode of {len(pcm)} samples at {self.rate} Hz failed ({n})")
        return self._out.raw[:n]


def pcm_frame(samples: np.ndarray, rate: int, pts: int) -> av.AudioFrame:
    """16-bit mono `samples` at `rate` as the frame aiortc's tracks and encoders take."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, rate)
    return frame


class ConcealingDecoder(Decoder):
    """Decodes what the BoundedJitterBuffer plays, lost packets concealed: Opus with FEC or
    PLC, any other codec with silence as long as the packet after the gap."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.opus = OpusDecoder() if codec.mimeType.lower() == "audio/opus" else None
        self._other = None if self.opus is not None else get_decoder(codec)
        self._pts = 0

    def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
        played = encoded_frame.frames if isinstance(encoded_frame, PlayedFrames) else [encoded_frame]
        out: list[Frame] = []
        for frame in played:
            lost = min(frame.lost_before, MAX_CONCEALED) if isinstance(frame, PlayedFrame) else 0
            out += self._opus(frame.data, lost) if self.opus is not None else self._any(frame, lost)
        return out

    def _opus(self, data: bytes, lost: int) -> list[Frame]:
        assert self.opus is not None
        concealed = [self.opus.conceal(lost, data)] if lost else []  # before: it moves the decoder on
        pcm = np.concatenate([*concealed, self.opus.decode(data)])
        frame = pcm_frame(pcm, OPUS_RATE, self._pts)
        self._pts += len(pcm)
        return [frame]

    def _any(self, frame: JitterFrame, lost: int) -> list[Frame]:
        assert self._other is not None
        decoded = self._other.decode(frame)
        if not lost or not decoded:
            return decoded
        first = decoded[0]
        assert isinstance(first, av.AudioFrame)
        layout, samples = first.layout.name, first.samples * lost
        silence = av.AudioFrame(format=first.format.name, layout=layout, samples=samples)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate = first.sample_rate
        return [silence, *decoded]


def opus_packets(samples: np.ndarray, rate: int, bitrate: int, fec: bool) -> list[RtpPacket]:
    """`samples` through the lab's Opus encoder as RTP packets, 20 ms each: the browser leg
    offline, for tests and benches."""
    encoder = OpusEncoder(bitrate, fec)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    step = rate // 50
    packets: list[RtpPacket] = []
    for pts in range(0, len(pcm) - step + 1, step):
        payloads, timestamp = encoder.encode(pcm_frame(pcm[pts : pts + step], rate, pts))
        for payload in payloads:
            assert timestamp is not None  # None only with no payload (the encoder buffering)
            seq = len(packets)
            packets.append(RtpPacket(OPUS_PT, sequence_number=seq, timestamp=timestamp, payload=payload))
    return packets


def receive(
    packets: list[RtpPacket], codec: RTCRtpCodecParameters, rate: int, spec: JitterBufferSpec = DEFAULT_SPEC
) -> tuple[np.ndarray, ConcealingDecoder]:
    """What the lab's aiortc receive path (jitter buffer, decoder) makes of `packets`
    arriving in list order, as float samples at `rate`; and the decoder, for its counts."""
    buffer = BoundedJitterBuffer(spec)
    decoder = ConcealingDecoder(codec)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    pcm: list[np.ndarray] = [np.zeros(0, dtype=np.int16)]
    for packet in packets:
        _, played = buffer.add(packet)
        for frame in decoder.decode(played) if played is not None else []:
            assert isinstance(frame, av.AudioFrame)
            pcm += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    return np.concatenate(pcm).astype(np.float32) / 32768.0, decoder
