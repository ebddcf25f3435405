"""WAV files, speech prompts, and the two measures of "the audio that arrived is the audio
that was sent": envelope correlation (robust, any codec) and PESQ (P.862)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000

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


def ensure_prompts(folder: Path) -> dict[str, Path]:
    """The two speech prompts as 8 kHz mono WAVs, spoken by espeak-ng once and kept."""
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
        samples, rate = read_wav(raw)
        samples = resample(samples, rate)
        samples = 0.5 * samples / max(1e-6, float(np.max(np.abs(samples))))
        pause = np.zeros(RATE // 2, dtype=np.float32)
        write_wav(paths[name], np.concatenate([samples, pause]))
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
    active = env_rx > (np.max(env_rx) - 4.0)  # drop leading/trailing digital silence
    if not active.any():
        return Match(0.0, 0.0)
    first, last = np.argmax(active), len(active) - np.argmax(active[::-1])
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


def pesq_nb(source: np.ndarray, received: np.ndarray, rate: int = RATE) -> float:
    """PESQ narrowband MOS-LQO of `received` against the aligned stretch of looped `source`."""
    from pesq import pesq

    match = best_match(source, received, rate)
    start = int(round(match.lag_s * rate)) % len(source)
    looped = np.tile(source, int(np.ceil((start + len(received)) / len(source))) + 1)
    reference = looped[start : start + len(received)]
    return float(pesq(rate, reference.astype(np.float32), received.astype(np.float32), "nb"))


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
