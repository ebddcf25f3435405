"""G.711 (PCMU, PCMA) for the gateway's Opus relay: 16-bit linear <-> 8-bit codes by table.

Decoding is ITU-T G.711's expansion (the formulas of Sun's reference g711.c, which FFmpeg's
pcm_mulaw and pcm_alaw decoders use too). Encoding picks the code whose expansion is nearest,
over the 14-bit value (the sample >> 2), as FFmpeg's encoder does (build_xlaw_table in
libavcodec/pcm_tablegen.h): both tables equal FFmpeg's on every 16-bit input
(tests/test_g711.py). A table lookup is one numpy indexing per packet.
"""

from __future__ import annotations

import numpy as np

_BIAS = 0x84


def _ulaw_to_linear(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return _BIAS - t if u & 0x80 else t - _BIAS


def _alaw_to_linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    segment = (a & 0x70) >> 4
    if segment == 0:
        t += 8
    else:
        t = (t + 0x108) << (segment - 1)
    return t if a & 0x80 else -t


def _encode_table(to_linear: np.ndarray, mask: int) -> np.ndarray:
    """Code per 14-bit value (index: (sample + 32768) >> 2): the code of the nearest level,
    each sign's codes walked outward from zero (mask: the code of the smallest positive level)."""
    table = np.empty(16384, dtype=np.uint8)
    table[8192] = mask
    j = 1
    for i in range(127):
        v1 = int(to_linear[i ^ mask])
        v2 = int(to_linear[(i + 1) ^ mask])
        v = (v1 + v2 + 4) >> 3
        if j < v:
            table[8192 - v + 1 : 8192 - j + 1] = i ^ (mask ^ 0x80)
            table[8192 + j : 8192 + v] = i ^ mask
            j = v
    table[1 : 8192 - j + 1] = 127 ^ (mask ^ 0x80)
    table[8192 + j :] = 127 ^ mask
    table[0] = table[1]
    return table


def _by_sample(table: np.ndarray) -> np.ndarray:
    """`table` indexed by the 16-bit sample's bits (its uint16 view): one lookup a packet."""
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    return table[(samples + 32768) >> 2]


ULAW_TO_LINEAR = np.array([_ulaw_to_linear(c) for c in range(256)], dtype=np.int16)
ALAW_TO_LINEAR = np.array([_alaw_to_linear(c) for c in range(256)], dtype=np.int16)
_LINEAR_TO_ULAW = _by_sample(_encode_table(ULAW_TO_LINEAR, 0xFF))
_LINEAR_TO_ALAW = _by_sample(_encode_table(ALAW_TO_LINEAR, 0xD5))

_DECODE = {"pcmu": ULAW_TO_LINEAR, "pcma": ALAW_TO_LINEAR}
_ENCODE = {"pcmu": _LINEAR_TO_ULAW, "pcma": _LINEAR_TO_ALAW}
CODECS = tuple(_DECODE)


def decode(codec: str, payload: bytes) -> np.ndarray:
    """`payload` of `codec` (pcmu, pcma) as 16-bit samples."""
    return _DECODE[codec][np.frombuffer(payload, dtype=np.uint8)]


def encode(codec: str, samples: np.ndarray) -> bytes:
    """16-bit `samples` as a `codec` (pcmu, pcma) payload."""
    return _ENCODE[codec][samples.astype(np.int16, copy=False).view(np.uint16)].tobytes()
