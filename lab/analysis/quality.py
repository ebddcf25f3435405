"""Call quality: the ITU-T G.107 E-model per RTP stream, and PESQ per direction from the
lab's own recordings.

E-model assumptions (stated in every report):
* default G.107 values for everything not measured (R0 - Is = 93.2, A = 0);
* codec impairment Ie and packet-loss robustness Bpl from ITU-T G.113 Appendix I where it
  lists the codec; values marked "assumed" are the lab's estimates for codecs it does not;
* packet-loss concealment on (Bpl "with PLC"); the burst ratio BurstR measured from the
  stream's own loss bursts (lab.analysis.rtp.loss_bursts; 1 for random loss), in
  Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl) (ITU-T G.107);
* one-way delay Ta = packetisation (ptime) + a fixed jitter buffer of max(40 ms, 2 x the
  stream's max jitter) + the mean delay of the network party the stream crossed, measured
  on the wire (none on the direct path: loopback's is negligible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.analysis.rtp import RtpStats


@dataclass(frozen=True)
class CodecImpairment:
    ie: float
    bpl: float
    source: str  # "G.113 Appendix I ..." or "assumed: why"


_NOT_IN_G113 = "assumed: not in G.113 Appendix I"
_WIDEBAND = "assumed: wideband, scored on the narrowband scale"
#: Keyed by the lab's codec names (lab.sip.codecs): Speex by its clock rate, since 16 and
#: 32 kHz Speex are wideband codecs of their own.
IMPAIRMENTS = {
    "PCMU": CodecImpairment(0, 25.1, "G.113 Appendix I (G.711 with PLC)"),
    "PCMA": CodecImpairment(0, 25.1, "G.113 Appendix I (G.711 with PLC)"),
    "G722": CodecImpairment(0, 25.1, f"{_WIDEBAND}, as G.711"),
    "GSM": CodecImpairment(20, 10.0, "G.113 Appendix I Ie (GSM 06.10 full rate); Bpl assumed"),
    "G729": CodecImpairment(11, 19.0, "G.113 Appendix I (G.729A + VAD)"),
    "ILBC": CodecImpairment(11, 32.0, _NOT_IN_G113),
    "SPEEX8": CodecImpairment(10, 20.0, _NOT_IN_G113),
    "SPEEX16": CodecImpairment(10, 20.0, f"{_NOT_IN_G113}; {_WIDEBAND}"),
    "SPEEX32": CodecImpairment(10, 20.0, f"{_NOT_IN_G113}; {_WIDEBAND}"),
    "OPUS": CodecImpairment(0, 30.0, _WIDEBAND),
}
UNKNOWN = CodecImpairment(10, 20.0, "assumed (codec unknown)")
PTIME_MS = 20.0
MIN_JITTER_BUFFER_MS = 40.0


@dataclass(frozen=True)
class EModel:
    r_factor: float
    mos: float
    ie_eff: float
    id: float
    delay_ms: float
    impairment: CodecImpairment


def impairment_of(codec: str, rate: int = 0) -> CodecImpairment:
    """`codec` as SDP names it; `rate`, its RTP clock rate, tells Speex 8, 16 and 32 apart."""
    name = codec.upper().replace("-", "")
    if name == "SPEEX":
        name += str(rate // 1000 or 8)
    for key, value in IMPAIRMENTS.items():
        if name.startswith(key):
            return value
    return UNKNOWN


def delay_impairment(ta_ms: float) -> float:
    """G.107 Idd for the absolute delay Ta (echo terms at their defaults are negligible)."""
    if ta_ms <= 100:
        return 0.0
    x = math.log10(ta_ms / 100) / math.log10(2)
    return 25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)


def mos_from_r(r: float) -> float:
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def e_model(
    stats: RtpStats, codec: str, burst_ratio: float = 1.0, network_delay_ms: float = 0.0, rate: int = 0
) -> EModel:
    """`network_delay_ms`: the mean delay a network party added on the way (lab.analysis.hops);
    `rate`: the codec's RTP clock rate (Speex 8, 16 and 32 kHz are told apart by it)."""
    imp = impairment_of(codec, rate)
    ppl = max(0.0, stats.lost_pct)
    ie_eff = imp.ie + (95 - imp.ie) * ppl / (ppl / burst_ratio + imp.bpl)
    delay = PTIME_MS + max(MIN_JITTER_BUFFER_MS, 2 * max(0.0, stats.max_jitter_ms)) + network_delay_ms
    idd = delay_impairment(delay)
    r = 93.2 - idd - ie_eff
    return EModel(round(r, 1), round(mos_from_r(r), 2), round(ie_eff, 1), round(idd, 1), delay, imp)


@dataclass(frozen=True)
class Pesq:
    direction: str  # "Browser -> Mobile phone"
    mos_lqo: float
    ceiling: float | None  # the same prompt offline through the same codec chain
    chain: tuple[str, ...]
    #: from a sample leaving one side's speaker to the other side hearing it (the recordings)
    mouth_to_ear_ms: float | None = None
    #: "P.862" (narrowband, 8 kHz) or "P.862.2" (wideband, 16 kHz: a wideband lab's call whose
    #: every codec is wideband); the score and its ceiling are on the same scale
    scale: str = "P.862"
