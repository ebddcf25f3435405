"""WAV files, speech prompts, and the two measures of "the audio that arrived is the audio
that was sent": envelope correlation (robust, any codec) and PESQ (P.862, and P.862.2 wideband)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.config import NARROWBAND, WIDEBAND

RATE = NARROWBAND  # what the lab's audio runs at unless a lab is wideband

PROMPTS = {
    # Two voices and two texts: each side's recording must match its own far end only.
    "browser": ("en-us", "This is the browser calling the mobile phone. One, two, three, four, five."),
    "phone": ("en-gb+f3", "Hello, the mobile phone is speaking. Six, seven, eight, nine, ten."),
}
ESPEAK_APT = "apt-get install -y espeak-ng"


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples in [-1, 1] and the sample rate."""
    with wave.open(str(path), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        raw = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit WAV is supported, not {8 * width}-bit")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def wav_is_final(path: Path) -> bool:
    """A RIFF header whose size field covers the whole file: the writer has closed it."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE" and int.from_bytes(head[4:8], "little") == size - 8


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    if rate == to:
        return samples
    from scipy import signal  # 0.6 s to import: only where audio is resampled

    g = np.gcd(rate, to)
    return signal.resample_poly(samples, to // g, rate // g).astype(np.float32)


def ensure_prompts(folder: Path, rate: int = RATE) -> dict[str, Path]:
    """The two speech prompts as mono WAVs at `rate`, spoken by espeak-ng (at 22.05 kHz) once
    and kept."""
    paths = {name: folder / f"{name}.wav" for name in PROMPTS}
    if all(p.exists() for p in paths.values()):
        return paths
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise FileNotFoundError(f"espeak-ng speaks the lab's prompts; install it: {ESPEAK_APT}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, (voice, text) in PROMPTS.items():
        raw = folder / f"{name}.espeak.wav"
        subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
        samples, spoken_rate = read_wav(raw)
        samples = resample(samples, spoken_rate, rate)
        samples = 0.5 * samples / max(1e-6, float(np.max(np.abs(samples))))
        pause = np.zeros(rate // 2, dtype=np.float32)
        write_wav(paths[name], np.concatenate([samples, pause]), rate)
        raw.unlink()
    return paths


def envelope(samples: np.ndarray, rate: int = RATE, step_ms: int = 10) -> np.ndarray:
    """Speech energy envelope, one value per step: survives codecs that keep no waveform."""
    step = rate * step_ms // 1000
    usable = len(samples) // step * step
    frames = samples[:usable].reshape(-1, step)
    return np.log10(1e-6 + np.mean(frames**2, axis=1))


@dataclass(frozen=True)
class Match:
    correlation: float  # Pearson correlation of the aligned envelopes, -1..1
    lag_s: float  # where in the (looped) source the received audio starts


def best_match(source: np.ndarray, received: np.ndarray, rate: int = RATE) -> Match:
    """How well `received` matches some stretch of `source` played in a loop."""
    env_src = envelope(source, rate)
    env_rx = envelope(received, rate)
    first, last = _talk_steps(env_rx)
    env_rx = env_rx[first:last]
    if len(env_rx) < 50:  # half a second of audio says nothing
        return Match(0.0, 0.0)
    loops = int(np.ceil(len(env_rx) / len(env_src))) + 1
    looped = np.tile(env_src, loops)
    rx = (env_rx - env_rx.mean()) / (env_rx.std() + 1e-9)
    best = (-1.0, 0)
    for offset in range(len(env_src)):
        window = looped[offset : offset + len(rx)]
        w = (window - window.mean()) / (window.std() + 1e-9)
        c = float(np.dot(w, rx) / len(rx))
        if c > best[0]:
            best = (c, offset)
    return Match(best[0], best[1] * 0.01 - first * 0.01)


#: heard_match: the received audio is scored in windows this long, ...
HEARD_WINDOW_S = 1.0
#: ... each free to sit this far from one common delay: the delay steps of the jitter buffers
HEARD_DRIFT_S = 0.1
#: ... on envelopes whose quiet is clipped this far below their peak: a dropout's digital
#: zeros (log energy -6) would otherwise outweigh all the speech around them
HEARD_FLOOR_DB = 30.0


def heard_match(source: np.ndarray, received: np.ndarray, rate: int = RATE) -> float:
    """How surely `received` is `source` (played in a loop) as a listener heard it, -1..1.

    best_match holds one delay for the whole recording, but a jitter buffer that inserts
    or drops a frame mid-call moves the delay by 20 ms, and one such step takes a clean
    call from 0.93 to 0.7 there. Here the talk is cut in windows of HEARD_WINDOW_S; each
    window takes its best delay within HEARD_DRIFT_S of one common delay, the common delay
    being the one where the windows' best correlations sum highest. The result is their
    mean. On the lab's 2 s recordings: 0.98 for the prompt, 0.88 or more with a 20 ms step
    anywhere; the other prompt up to 0.68 (the two count alike), so "this is not that
    prompt" is best_match's to say (0.61 at most there); silence 0. Half-second windows
    follow bigger steps (0.84 at 80 ms) but scored a right answer 0.80 once in a full
    suite (tests/test_recordings.py, after a hold; why, not found).
    """
    env_src = _floored(envelope(source, rate))
    env_rx = envelope(received, rate)
    first, last = _talk_steps(env_rx)
    env_rx = _floored(env_rx[first:last])
    width = int(HEARD_WINDOW_S * 100)
    windows = [env_rx[s : s + width] for s in range(0, len(env_rx) - width // 2, width)]
    windows = [w for w in windows if w.std() > 1e-6]  # all quiet says nothing either way
    if not windows:
        return 0.0
    period = len(env_src)
    drift = int(HEARD_DRIFT_S * 100)
    looped = np.tile(env_src, int(np.ceil(len(env_rx) / period)) + 3)
    lags = np.arange(period + 2 * drift) - drift  # every common delay, widened by the drift
    scores = np.empty((len(windows), period))
    for i, window in enumerate(windows):
        start = i * width
        stretches = np.lib.stride_tricks.sliding_window_view(looped, len(window))[(lags % period) + start]
        per_lag = _zscored(stretches) @ _zscored(window) / len(window)
        best_near = np.lib.stride_tricks.sliding_window_view(per_lag, 2 * drift + 1).max(axis=1)
        scores[i] = best_near
    return float(scores.sum(axis=0).max() / len(windows))


def _floored(env: np.ndarray) -> np.ndarray:
    return np.maximum(env, np.max(env) - HEARD_FLOOR_DB / 10) if len(env) else env


def _zscored(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    return (x - mean) / (x.std(axis=-1, keepdims=True) + 1e-9)


TALK_RANGE_DB = 40.0  # the talk period: where the speech envelope is within this of its peak
SILENCE_LOG_ENERGY = -5.0  # log10 mean square of a 10 ms frame: below -50 dBFS is no sound


def talk_period(samples: np.ndarray, rate: int = RATE) -> tuple[int, int]:
    """First and last sample of speech in a recording (the silence before the far end's
    audio arrived, and after the call, left out); (0, 0) when it holds no sound."""
    env = envelope(samples, rate)
    if len(env) == 0 or np.max(env) < SILENCE_LOG_ENERGY:
        return 0, 0
    step = rate // 100
    first, last = _talk_steps(env)
    return first * step, last * step


def _talk_steps(env: np.ndarray) -> tuple[int, int]:
    """The first and past-the-last envelope step within TALK_RANGE_DB of the loudest: the
    digital silence before the far end's audio came and after the call left out."""
    if len(env) == 0:
        return 0, 0
    active = env > np.max(env) - TALK_RANGE_DB / 10
    return int(np.argmax(active)), len(active) - int(np.argmax(active[::-1]))


def _aligned_source(source: np.ndarray, received: np.ndarray, rate: int) -> np.ndarray:
    """The stretch of `source` (played in a loop) that `received` is a copy of."""
    start = int(round(best_match(source, received, rate).lag_s * rate)) % len(source)
    looped = np.tile(source, int(np.ceil((start + len(received)) / len(source))) + 1)
    return looped[start : start + len(received)]


WIDEBAND_RATE = WIDEBAND  # P.862.2 scores 16 kHz audio only


def pesq_nb(source: np.ndarray, received: np.ndarray, rate: int = RATE) -> float:
    """PESQ narrowband (P.862) MOS-LQO of what was heard of `source`, sent in a loop.

    Only the talk period is scored, in whole loops of the source, each aligned on its own:
    the jitter buffers move the delay during a call, and the silence before the first
    packet and after the hangup is no part of the codec chain's quality. With one loop or
    more, the median of the loops; a call shorter than one loop is scored as a whole. So a
    5 s and a 30 s call of the same chain score alike, and alike its offline ceiling (which
    is one loop, scored the same way).
    """
    return _pesq(source, received, rate, "nb")


def pesq_wb(source: np.ndarray, received: np.ndarray, rate: int = WIDEBAND_RATE) -> float:
    """Wideband PESQ (P.862.2) MOS-LQO of 16 kHz audio, for chains that stay wideband end
    to end (Opus, G.722, Speex 16 kHz); scored like pesq_nb. Its scale is not P.862's: the
    same narrowband chain scores lower here, so compare wb with wb."""
    if rate != WIDEBAND_RATE:
        raise ValueError(f"wideband PESQ scores {WIDEBAND_RATE} Hz audio, not {rate} Hz")
    return _pesq(source, received, rate, "wb")


def _pesq(source: np.ndarray, received: np.ndarray, rate: int, mode: str) -> float:
    from pesq import pesq

    first, last = talk_period(received, rate)
    talk = received[first:last]
    if len(talk) < rate // 4:
        raise ValueError("PESQ: the recording holds less than 0.25 s of sound")
    period = len(source)
    lag = int(round(best_match(source, talk, rate).lag_s * rate)) % period
    loops = [talk[s : s + period] for s in range((period - lag) % period, len(talk) - period + 1, period)]
    scores = [
        float(
            pesq(rate, _aligned_source(source, part, rate).astype(np.float32), part.astype(np.float32), mode)
        )
        for part in loops or [talk]
    ]
    return float(np.median(scores))


def one_way_latency(
    source: np.ndarray, received: np.ndarray, sent_t0: float, received_t0: float, rate: int = RATE
) -> float:
    """Seconds from a sample leaving one side to the other side hearing it.

    `source` was sent in a loop starting at `sent_t0`, `received` was recorded starting at
    `received_t0`, both on time.monotonic() (one clock for every process of the machine).
    Resolution: the 10 ms envelope step.
    """
    match = best_match(source, received, rate)
    period = len(source) / rate
    return (received_t0 - sent_t0 - match.lag_s) % period
