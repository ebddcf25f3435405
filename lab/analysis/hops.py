"""What a network party did to a stream, measured on the wire: the same RTP packets (one
SSRC, matched by sequence number) seen entering the network and leaving it.

Definitions, per hop (sender -> network -> receiver):
- sent: packets that entered the network; delivered: distinct ones that left it;
  lost = sent - delivered (exactly the packets the network dropped, also the last ones,
  which the receiver's own sequence gaps cannot show); duplicated: extra copies that left.
- delay of a packet: when its first copy left minus when it entered, in ms (both
  timestamps from the same capture clock, so no clock offset). The hop's jitter is the
  standard deviation of those delays: what the network added to the spread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the model holds the hops it is built with
    from lab.analysis.model import RtpStream


@dataclass(frozen=True)
class NetworkHop:
    network: str
    src_party: str
    dst_party: str
    ssrc: int
    codec: str
    sent: int
    delivered: int
    duplicated: int
    delay_ms: float  # mean
    delay_min_ms: float
    delay_max_ms: float
    delay_sd_ms: float
    #: per delivered packet: entry time (s since the capture's first packet) and delay (ms)
    t: np.ndarray = field(repr=False)
    delays_ms: np.ndarray = field(repr=False)
    #: entry times (s since the capture's first packet) and sequence numbers of the lost packets
    lost_t: np.ndarray = field(repr=False)
    lost_seqs: np.ndarray = field(repr=False)

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def label(self) -> str:
        return f"{self.src_party} -> {self.network} -> {self.dst_party}"


def _absolute(stream: RtpStream) -> np.ndarray:
    return stream.stats.start + stream.series.t


def network_hops(
    streams: Iterable[RtpStream], networks: Iterable[str], capture_start: float
) -> tuple[NetworkHop, ...]:
    """Every stream that crosses one of the `networks` (party names), paired with its
    continuation on the far side."""
    streams = list(streams)
    names = set(networks)
    hops = []
    for into in (s for s in streams if s.dst_party in names and s.src_party not in names):
        out = next(
            (
                s
                for s in streams
                if s.src_party == into.dst_party and s.ssrc == into.ssrc and s.dst_party not in names
            ),
            None,
        )
        if out is None:
            continue
        entered = dict(zip(into.series.seq.tolist(), _absolute(into).tolist(), strict=True))
        left: dict[int, float] = {}
        copies = 0
        for seq, t in zip(out.series.seq.tolist(), _absolute(out).tolist(), strict=True):
            if seq in left:
                copies += 1
            else:
                left[seq] = t
        common = [seq for seq in entered if seq in left]
        t_in = np.array([entered[seq] for seq in common]) - capture_start
        delays = np.array([(left[seq] - entered[seq]) * 1000 for seq in common])
        lost = [seq for seq in entered if seq not in left]
        lost_t = np.array([entered[seq] for seq in lost]) - capture_start
        hops.append(
            NetworkHop(
                network=into.dst_party,
                src_party=into.src_party,
                dst_party=out.dst_party,
                ssrc=into.ssrc,
                codec=into.codec,
                sent=len(entered),
                delivered=len(common),
                duplicated=copies,
                delay_ms=float(delays.mean()) if len(delays) else 0.0,
                delay_min_ms=float(delays.min()) if len(delays) else 0.0,
                delay_max_ms=float(delays.max()) if len(delays) else 0.0,
                delay_sd_ms=float(delays.std()) if len(delays) else 0.0,
                t=t_in,
                delays_ms=delays,
                lost_t=lost_t,
                lost_seqs=np.array(lost, dtype=np.int64),
            )
        )
    return tuple(hops)
