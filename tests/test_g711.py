"""lab.g711 against FFmpeg's pcm_mulaw and pcm_alaw, an outside reference: every 16-bit
sample encodes to FFmpeg's code, every code decodes to FFmpeg's sample."""

from __future__ import annotations

import av
import numpy as np
import pytest

from lab import g711

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
FFMPEG = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}


def ffmpeg_encode(codec: str, samples: np.ndarray) -> bytes:
    encoder = av.CodecContext.create(FFMPEG[codec], "w")
    encoder.sample_rate, encoder.format, encoder.layout = 8000, "s16", "mono"  # type: ignore[attr-defined]
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts = 8000, 0
    return b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])  # type: ignore[attr-defined]


def ffmpeg_decode(codec: str, payload: bytes) -> np.ndarray:
    decoder = av.CodecContext.create(FFMPEG[codec], "r")
    decoder.sample_rate, decoder.layout = 8000, "mono"  # type: ignore[attr-defined]
    return np.concatenate([f.to_ndarray().ravel() for f in decoder.decode(av.Packet(payload))])


@pytest.mark.parametrize("codec", g711.CODECS)
def test_every_sample_encodes_as_ffmpeg_encodes_it(codec: str) -> None:
    assert g711.encode(codec, EVERY_SAMPLE) == ffmpeg_encode(codec, EVERY_SAMPLE)


@pytest.mark.parametrize("codec", g711.CODECS)
def test_every_code_decodes_as_ffmpeg_decodes_it(codec: str) -> None:
    codes = bytes(range(256))
    assert g711.decode(codec, codes).tolist() == ffmpeg_decode(codec, codes).tolist()


def test_a_round_trip_stays_within_the_codes_step() -> None:
    loud = np.array([-32768, -20000, -1000, -1, 0, 1, 1000, 20000, 32767], dtype=np.int16)
    for codec in g711.CODECS:
        back = g711.decode(codec, g711.encode(codec, loud)).astype(int)
        assert np.all(np.abs(back - loud) <= np.maximum(16, np.abs(loud.astype(int)) // 16)), (codec, back)
