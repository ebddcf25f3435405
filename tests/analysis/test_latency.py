"""The hop-by-hop delay's pure parts: RTP payloads, a stream's media time base, decoded
audio on its timestamps, and the ear's delay over time."""

from __future__ import annotations

import av
import numpy as np

from lab.analysis.latency import _rtp_payload, decoded_audio, ear_delays, media_base
from lab.audio import best_match

RATE = 8000


def speech_like(seconds: float, seed: int = 3) -> np.ndarray:
    """Noise bursts of random lengths and levels with pauses: an envelope to match."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < seconds * RATE:
        n = int(rng.integers(800, 3200))
        out.append(rng.normal(0, rng.uniform(0.05, 0.3), n).astype(np.float32))
        out.append(np.zeros(int(rng.integers(400, 2400)), dtype=np.float32))
    return np.concatenate(out)[: int(seconds * RATE)]


def test_the_payload_is_what_follows_csrcs_extension_and_before_padding() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 0x01, 0, 0, 1]) + bytes(8)  # padding, extension, 1 CSRC
    csrc = bytes(4)
    extension = bytes([0xBE, 0xDE, 0, 1]) + bytes(4)
    raw = header + csrc + extension + b"payload" + bytes([0, 0, 3])
    assert _rtp_payload(raw) == b"payload"
    assert _rtp_payload(bytes([0x80, 0, 0, 1]) + bytes(8) + b"abc") == b"abc"


def test_the_media_base_ignores_a_late_packet_and_a_burst() -> None:
    ts = np.arange(50) * 160
    t = 100.0 + ts / RATE + 0.002
    t[10] += 0.080  # one packet 80 ms late
    t[30:34] = t[33]  # a burst: three held back and sent with the fourth
    assert abs(media_base(t, ts, RATE) - 100.002) < 1e-9


def pcmu_payloads(samples: np.ndarray) -> list[bytes]:
    encoder = av.CodecContext.create("pcm_mulaw", "w")
    encoder.sample_rate, encoder.layout, encoder.format = RATE, "mono", "s16"
    encoder.open()
    pcm = (samples * 32767).astype("<i2")
    out = []
    for start in range(0, len(pcm), 160):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 160], format="s16", layout="mono")
        frame.sample_rate = RATE
        out.append(b"".join(bytes(p) for p in encoder.encode(frame)))
    return out


def test_decoded_audio_keeps_its_timeline_across_a_lost_packet_and_matches_the_prompt() -> None:
    prompt = speech_like(4.0)
    payloads = pcmu_payloads(prompt)
    ts = np.arange(len(payloads), dtype=np.int64) * 160 + 5000
    keep = [i for i in range(len(payloads)) if i != 40]
    audio = decoded_audio("PCMU", RATE, ts[keep], [payloads[i] for i in keep], RATE)
    assert audio is not None
    assert np.all(audio[40 * 160 : 41 * 160] == 0)  # the lost packet's place stays silent
    assert np.allclose(audio[41 * 160 : 42 * 160], prompt[41 * 160 : 42 * 160], atol=0.02)
    later = decoded_audio("PCMU", RATE, ts[100:], payloads[100:], RATE)
    assert later is not None
    assert abs(best_match(prompt, later, RATE).lag_s - 2.0) <= 0.01  # packet 100 carries 2.0 s in
    assert decoded_audio("speex", RATE, ts, payloads, RATE) is None


def test_the_ear_delay_grows_where_the_receiver_held_audio_back() -> None:
    prompt = speech_like(4.0)
    mouth = 50.0
    chunk = 160
    received = prompt[:]  # heard from the prompt's start, every chunk 30 ms after it was spoken
    arrivals = [mouth + 0.030 + k * 0.020 for k in range(len(received) // chunk)]
    arrivals[100:] = [a + 0.060 for a in arrivals[100:]]  # then 60 ms more (a deeper buffer)
    t, delays = ear_delays(prompt, received, RATE, mouth, [chunk] * len(arrivals), arrivals)
    assert np.allclose(delays[:100], 30, atol=10) and np.allclose(delays[100:], 90, atol=10)
    assert t[0] == arrivals[0]


def test_the_ear_delay_follows_a_recording_whose_timeline_slipped() -> None:
    prompt = speech_like(6.0)
    mouth, chunk, cut = 50.0, 160, 2 * RATE
    received = np.concatenate([prompt[:cut], prompt[cut + 480 :]])  # 60 ms concealed as nothing
    n = np.arange(len(received) // chunk) * chunk
    spoken = np.where(n < cut, n, n + 480) / RATE
    arrivals = list(mouth + 0.030 + spoken)  # every chunk heard 30 ms after it was spoken
    _, delays = ear_delays(prompt, received, RATE, mouth, [chunk] * len(n), arrivals)
    assert np.allclose(delays, 30, atol=10), delays[np.abs(delays - 30) > 10]
