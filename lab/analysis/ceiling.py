"""Speech through a codec chain offline: the quality ceiling a live call is compared with.

Opus, G.711 and G.722 run through FFmpeg (PyAV, the same library aiortc uses); GSM 06.10
through sox's libgsm, since FFmpeg ships no GSM encoder; Speex and iLBC through pjmedia's own
codecs, the ones the lab's calls use (lab.sip.transcode, a process of its own). G.722 on a
SIP leg is pjmedia's too: it scores below FFmpeg's (P.862.2 of the lab's prompt: 3.03
against 3.10 for one pass, 2.74 against 2.89 for Opus > G.722 > G.722), where the G.711 and
GSM of both agree within 0.05 (tests/test_audio.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from lab.audio import RATE, WIDEBAND_RATE, read_wav, resample, write_wav


def _ffmpeg_round_trip(samples: np.ndarray, codec: str, rate: int, channels: int = 1) -> np.ndarray:
    """Encode then decode `samples` (mono float at `rate`) with one FFmpeg codec."""
    layout = "stereo" if channels == 2 else "mono"
    encoder = cast(AudioCodecContext, av.CodecContext.create(codec, "w"))
    encoder.sample_rate = rate
    encoder.layout = layout
    encoder.format = (encoder.codec.audio_formats or [av.AudioFormat("s16")])[0].name
    if codec == "libopus":
        encoder.bit_rate = 96000  # as aiortc's OpusEncoder
        encoder.options = {"application": "voip"}
    encoder.open()
    decoder = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
    decoder.sample_rate = rate
    decoder.layout = layout
    decoder.open()
    to_codec = av.AudioResampler(format=encoder.format.name, layout=layout, rate=rate)
    to_float = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame_size = encoder.frame_size or rate // 50
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    out: list[np.ndarray] = []
    packets = []
    for start in range(0, len(pcm) - frame_size + 1, frame_size):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + frame_size], format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for converted in to_codec.resample(frame):
            packets += encoder.encode(converted)
    packets += encoder.encode(None)
    for packet in packets:
        for decoded in decoder.decode(packet):
            for f in to_float.resample(decoded):
                out.append(f.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def opus(samples: np.ndarray) -> np.ndarray:
    return _ffmpeg_round_trip(samples, "libopus", 48000)


def pcmu(samples: np.ndarray) -> np.ndarray:
    return _ffmpeg_round_trip(samples, "pcm_mulaw", 8000)


def pcma(samples: np.ndarray) -> np.ndarray:
    return _ffmpeg_round_trip(samples, "pcm_alaw", 8000)


def g722(samples: np.ndarray) -> np.ndarray:
    return _ffmpeg_round_trip(samples, "g722", 16000)


def gsm(samples: np.ndarray) -> np.ndarray:
    sox = shutil.which("sox")
    if sox is None:
        raise FileNotFoundError("GSM 06.10 offline needs sox: apt-get install -y sox")
    with tempfile.TemporaryDirectory() as tmp:
        src, coded, back = Path(tmp, "in.wav"), Path(tmp, "x.gsm"), Path(tmp, "out.wav")
        write_wav(src, samples, 8000)
        subprocess.run([sox, str(src), "-t", "gsm", str(coded)], check=True)
        command = [sox, "-t", "gsm", "-r", "8000", "-c", "1", str(coded), "-b", "16", str(back)]
        subprocess.run(command, check=True)
        decoded, _ = read_wav(back)
    return decoded


def pjmedia(codec: str, rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """`codec` (lab.sip.codecs name) at its clock rate `rate`, through pjmedia."""

    def round_trip(samples: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            src, back = Path(tmp, "in.wav"), Path(tmp, "out.wav")
            write_wav(src, samples, rate)
            command = [sys.executable, "-m", "lab.sip.transcode", codec, str(src), str(back)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            if done.returncode != 0 or not back.exists():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"pjmedia {codec} offline failed ({done.returncode}): {last}")
            decoded, _ = read_wav(back)
        return decoded

    return round_trip


#: Each codec's round trip, on samples at the codec's own rate (Hz).
CODECS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "opus": (opus, 48000),
    "pcmu": (pcmu, 8000),
    "pcma": (pcma, 8000),
    "g722": (g722, 16000),
    "gsm": (gsm, 8000),
    "speex8": (pjmedia("SPEEX8", 8000), 8000),
    "speex16": (pjmedia("SPEEX16", 16000), 16000),
    "speex32": (pjmedia("SPEEX32", 32000), 32000),
    "ilbc": (pjmedia("ILBC", 8000), 8000),
}


def is_wideband(chain: tuple[str, ...] | list[str]) -> bool:
    """Whether every codec of `chain` carries 7 kHz audio (samples at 16 kHz or more); an
    unknown codec is taken for narrowband."""
    return all(name.lower() in CODECS and CODECS[name.lower()][1] >= WIDEBAND_RATE for name in chain)


#: The SIP legs' codecs where pjmedia's differ from CODECS'.
SIP_LEG_CODECS = {**CODECS, "g722": (pjmedia("G722", 16000), 16000)}


def through_chain(
    samples: np.ndarray, chain: list[str], rate: int = RATE, on_sip_legs: Sequence[bool] = ()
) -> np.ndarray:
    """`samples` (mono float at `rate`) encoded and decoded by each codec of `chain` in turn,
    each at its own rate, as the lab's parties resample to and from their bridge's rate.
    `on_sip_legs[i]`: the i-th codec is on a SIP leg, so pjmedia's (default: none is)."""
    for i, name in enumerate(chain):
        sip_leg = i < len(on_sip_legs) and on_sip_legs[i]
        round_trip, codec_rate = (SIP_LEG_CODECS if sip_leg else CODECS)[name.lower()]
        samples = resample(round_trip(resample(samples, rate, codec_rate)), codec_rate, rate)
    return samples
