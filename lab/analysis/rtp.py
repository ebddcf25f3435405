"""RTP stream statistics: the lab's one definition, equal to Wireshark's RTP analysis as
`tshark -z rtp,streams` computes it (Wireshark 4.0, ui/tap-rtp-analysis.c), packet for packet.

Timestamps are unwrapped (extended); a packet is "in time" when its timestamp is not before
the stream's first. For each in-time packet i after the first, with p the previous in-time
packet and q the previous in-time packet whose clock rate is known:
    delta_i   = arrival_i - arrival_p                                        (ms)
    nominal_i = (ts_i - ts_first) / (clock // 1000)                          (ms)
    D_i       = |arrival_i - (arrival_p + nominal_i - nominal_q)|            (ms)
    J_i       = J_q + (D_i - J_q) / 16                                       (RFC 3550 jitter)
    skew_i    = nominal_i - (arrival_i - arrival_first)
Jitter and skew are computed only where the clock rate is known (not for telephone-event,
whose packets still move arrival_p: Wireshark's jitter jumps after a DTMF burst, and so
does ours). min/mean/max of delta and jitter count only "regular" packets: not the first,
no marker bit, neither comfort noise nor right after it, in time. The means follow
Wireshark's running average, which divides by the packet count so far.
Expected = last seq - first seq + 1 + 65536 * wraps; lost = expected - received.

Where Wireshark counts no packet for min/mean/max (one packet; an unknown clock rate; every
packet with the marker bit, as aiortc sends audio), it prints placeholders (-1.000 / 0.000):
the stats keep them, as the JSON and tshark do, and say why beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.analysis.pcap import rows

COMFORT_NOISE = (13, 19)
#: RTCP packet types 200-207 as the RTP PT field sees them (RFC 5761: SR, RR, SDES, BYE, APP,
#: and the feedback a video call sends: 205 NACK, 206 PLI and FIR, 207 XR)
RTCP_PTS = range(72, 80)


@dataclass(frozen=True)
class RtpHeaders:
    """The fixed RTP header (RFC 3550 section 5.1) of many UDP payloads, decoded at once; the
    fields of a payload that is not RTP-shaped hold garbage."""

    rtp: np.ndarray  # bool: 12 bytes or more, version 2, not an RTCP packet type
    pt: np.ndarray  # int64
    marker: np.ndarray  # bool
    seq: np.ndarray  # int64
    timestamp: np.ndarray  # int64
    ssrc: np.ndarray  # int64


def decode_headers(data: np.ndarray, payload: np.ndarray, length: np.ndarray) -> RtpHeaders:
    """Headers of the payloads at offsets `payload` of `data` (uint8), `length` bytes each."""
    ok = length >= 12
    header = rows(data, np.where(ok, payload, 0), 12)  # a short payload reads the file's first bytes
    words = header.view(">u4").astype(np.int64)
    pt = (header[:, 1] & 0x7F).astype(np.int64)
    return RtpHeaders(
        rtp=ok & ((header[:, 0] >> 6) == 2) & ~np.isin(pt, RTCP_PTS),
        pt=pt,
        marker=(header[:, 1] >> 7).astype(bool),
        seq=(header[:, 2].astype(np.int64) << 8) | header[:, 3],
        timestamp=words[:, 1],
        ssrc=words[:, 2],
    )


@dataclass(frozen=True)
class RtpStats:
    packets: int
    expected: int
    lost: int
    lost_pct: float
    seq_errors: int
    min_delta_ms: float
    mean_delta_ms: float
    max_delta_ms: float
    min_jitter_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float
    max_skew_ms: float
    start: float  # arrival of the first packet, seconds (capture clock)
    end: float
    #: Why min/mean/max delta, jitter or the skew are placeholders; "" where they are measured.
    why_no_delta: str = ""
    why_no_jitter: str = ""
    why_no_skew: str = ""


@dataclass(frozen=True)
class RtpSeries:
    """Per packet, for plots: seconds since the stream's first packet, jitter and delta (ms),
    and which packets the min/mean/max jitter count (a plot shows those, so it agrees with
    the statistics)."""

    t: np.ndarray
    jitter_ms: np.ndarray
    delta_ms: np.ndarray
    seq: np.ndarray
    jitter_counted: np.ndarray


def _rfc3550_filter(diff: np.ndarray, block: int = 256) -> np.ndarray:
    """J_k = J_{k-1} + (D_k - J_{k-1}) / 16 for every k, J_{-1} = 0, vectorised by blocks
    (a first-order filter; within a block the powers of 15/16 stay well inside float64)."""
    a = 15 / 16
    n = len(diff)
    blocks = -(-n // block)
    padded = np.zeros(blocks * block)
    padded[:n] = diff
    d = padded.reshape(blocks, block)
    i = np.arange(block)
    inner = np.cumsum(d * a ** (-i), axis=1) * a**i / 16  # each block as if it started from 0
    carry = np.zeros(blocks)  # J just before each block
    decay = a**block
    last = inner[:, -1]
    for k in range(1, blocks):
        carry[k] = carry[k - 1] * decay + last[k - 1]
    return (inner + carry[:, None] * a ** (i + 1)).reshape(-1)[:n]


def _running_mean(values: np.ndarray, counted: np.ndarray, count_before: np.ndarray) -> float:
    """Wireshark's mean: M = (M * (n - 1) + x) / n at each counted packet, n = packets so far."""
    idx = np.nonzero(counted)[0]
    if len(idx) == 0:
        return 0.0
    n = count_before[idx].astype(np.float64)
    a = (n - 1) / n
    a[0] = 1.0  # the mean starts at 0: the first factor multiplies nothing
    log_a = np.log(a)
    tail = np.cumsum(log_a[::-1])[::-1]  # sum of log a_j for j >= k
    weights = np.exp(np.concatenate([tail[1:], [0.0]]))  # product of a_j for j > k
    return float(np.sum(values[idx] / n * weights))


def _unwrap_timestamps(ts: np.ndarray) -> np.ndarray:
    steps: np.ndarray = np.diff(ts.astype(np.int64))
    steps = np.mod(steps + (1 << 31), 1 << 32) - (1 << 31)
    return np.concatenate([[int(ts[0])], int(ts[0]) + np.cumsum(steps)])


def _sequence(seq: np.ndarray, in_time: np.ndarray) -> tuple[int, int]:
    """Sequence errors and 16-bit wraps: those of Wireshark's state machine (_sequence_steps),
    found at once where it is sure to give the same. Its wrap state moves only on in-time
    packets, at each below-start one (or 65535 -> 0) or above-start one, so wraps are the
    below-start moves after none or after an above-start one. Its error state (seq_num)
    follows every packet while each is in time and comes after its predecessor (the next
    number, or a forward jump: an error); a late or out-of-time packet needs the walk."""
    later, earlier = seq[1:], seq[:-1]
    step = (later == earlier + 1) | ((earlier == 65535) & (later == 0))
    jump = ~step & ((earlier + 1 < later) | (earlier - later > 0xFF00))
    if not (in_time.all() and (step | jump).all()):
        return _sequence_steps(seq.tolist(), in_time.tolist())
    start = int(seq[0])
    below = (later < start) | ((later == 0) & (earlier == 65535))
    moves = below[below | (later > start)]
    return int(jump.sum()), int(moves[:1].sum() + (moves[1:] & ~moves[:-1]).sum())


def _sequence_steps(seq: list[int], in_time: list[bool]) -> tuple[int, int]:
    """Sequence errors and 16-bit wraps, by Wireshark's state machine."""
    start = seq[0]
    seq_num = seq[0]
    errors = wraps = 0
    under = False
    previous = seq[0]
    for s, ok in zip(seq[1:], in_time[1:], strict=True):
        if ok and not under and (s < start or (s == 0 and previous == 65535)):
            wraps += 1
            under = True
        elif ok and under and s > start:
            under = False
        if ok and seq_num + 1 == s or ok and seq_num == 65535 and s == 0:
            seq_num = s
        elif ok and (seq_num + 1 < s or seq_num - s > 0xFF00):
            seq_num = s
            errors += 1
        elif seq_num + 1 > s:
            errors += 1
        previous = s
    return errors, wraps


def _why_not_counted(
    counted: np.ndarray,
    in_time: np.ndarray,
    clock_known: bool,
    regular: np.ndarray | None,
    marker: np.ndarray,
) -> str:
    """Why no packet counts towards a statistic ("" when some do); `regular` for one that
    counts regular packets only."""
    if counted.any():
        return ""
    if len(counted) < 2:
        return "a single packet"
    if not in_time[1:].any():
        return "every timestamp is before the first packet's"
    reasons = [] if clock_known else ["clock rate unknown"]
    if regular is not None and not regular.any():
        marked = marker[1:].astype(bool).all()
        reasons.append("every packet carries the RTP marker bit" if marked else "no regular packet")
    return "; ".join(reasons) or "no regular packet with a known clock rate"


def stream_stats(
    arrival: np.ndarray,
    seq: np.ndarray,
    timestamp: np.ndarray,
    pt: np.ndarray,
    marker: np.ndarray,
    clock: np.ndarray,
) -> tuple[RtpStats, RtpSeries]:
    """Statistics of one RTP stream, packets in capture order.

    arrival in seconds; clock is the clock rate (Hz) of each packet's payload type, 0 when
    unknown or telephone-event.
    """
    n = len(arrival)
    t = (arrival - arrival[0]) * 1000.0
    ext = _unwrap_timestamps(timestamp)
    idx = np.arange(n)
    in_time = ext >= ext[0]
    previous_in_time = np.zeros(n, dtype=np.int64)
    previous_in_time[1:] = np.maximum.accumulate(np.where(in_time, idx, 0))[:-1]
    delta = t - t[previous_in_time]
    delta[0] = 0.0

    khz = clock // 1000
    timed = (khz > 0) & in_time
    timed[0] = False
    nominal = np.zeros(n)
    nominal[timed] = (ext[timed] - ext[0]) / khz[timed]
    # nominal time of the previous timed packet (the first packet's is 0)
    previous_timed = np.zeros(n, dtype=np.int64)
    previous_timed[1:] = np.maximum.accumulate(np.where(timed, idx, 0))[:-1]
    diff = np.abs(t - (t[previous_in_time] + nominal - nominal[previous_timed]))

    jitter = np.zeros(n)
    if timed.any():
        at = np.nonzero(timed)[0]
        holder = np.zeros(n)
        holder[at] = _rfc3550_filter(diff[at])
        last = np.maximum.accumulate(np.where(timed, idx, 0))
        jitter = np.where(idx >= at[0], holder[last], 0.0)
    skew = np.where(timed, nominal - t, 0.0)
    max_skew = float(skew[np.argmax(np.abs(skew))]) if n else 0.0

    previous_pt = np.concatenate([[pt[0]], pt[:-1]])
    regular = (
        (idx > 0)
        & ~marker.astype(bool)
        & ~np.isin(pt, COMFORT_NOISE)
        & ~np.isin(previous_pt, COMFORT_NOISE)
        & in_time
    )
    jittered = regular & timed
    clock_known = bool((khz[1:] > 0).any())
    seq64 = seq.astype(np.int64)
    errors, wraps = _sequence(seq64, in_time)
    expected = int(seq64[-1]) + wraps * 65536 - int(seq64[0]) + 1
    lost = expected - n
    stats = RtpStats(
        packets=n,
        expected=expected,
        lost=lost,
        lost_pct=100.0 * lost / expected if expected else 0.0,
        seq_errors=errors,
        min_delta_ms=float(delta[regular].min()) if regular.any() else -1.0,
        mean_delta_ms=_running_mean(delta, regular, idx),
        max_delta_ms=float(delta[regular].max()) if regular.any() else 0.0,
        min_jitter_ms=float(jitter[jittered].min()) if jittered.any() else -1.0,
        mean_jitter_ms=_running_mean(jitter, jittered, idx),
        max_jitter_ms=float(jitter[jittered].max()) if jittered.any() else 0.0,
        max_skew_ms=max_skew,
        start=float(arrival[0]),
        end=float(arrival[-1]),
        why_no_delta=_why_not_counted(regular, in_time, True, regular, marker),
        why_no_jitter=_why_not_counted(jittered, in_time, clock_known, regular, marker),
        why_no_skew=_why_not_counted(timed, in_time, clock_known, None, marker),
    )
    series = RtpSeries(
        t=t / 1000.0, jitter_ms=jitter, delta_ms=delta, seq=seq.copy(), jitter_counted=jittered
    )
    for array in (series.t, series.jitter_ms, series.delta_ms, series.seq, series.jitter_counted):
        array.setflags(write=False)
    return stats, series


@dataclass(frozen=True)
class LossBursts:
    """The structure of a stream's loss: runs of consecutive missing sequence numbers.

    burst_ratio is G.107's BurstR, estimated as the mean burst length seen over the mean
    burst length random loss of the same rate would give, 1 / (1 - p): 1 for random loss,
    above 1 for bursty loss (the simple Gilbert model's 1 / (p + r))."""

    bursts: int
    lost: int
    mean_length: float  # packets per burst; 0 without loss
    burst_ratio: float


def loss_bursts(seq: np.ndarray) -> LossBursts:
    """Loss bursts from the sequence numbers received, in arrival order (16-bit, wrapping;
    duplicates and reordering do not count as loss)."""
    if len(seq) < 2:
        return LossBursts(0, 0, 0.0, 1.0)
    raw = seq.astype(np.int64)
    wraps = np.concatenate([[0], np.cumsum(np.diff(raw) < -0x8000)])
    extended = raw + wraps * 65536
    steps = np.diff(extended)
    if not (steps > 0).all():  # reordered or duplicated: the numbers present, once each, in order
        extended = np.sort(extended)  # (not np.unique: it imports numpy.ma)
        extended = extended[np.concatenate([[True], extended[1:] != extended[:-1]])]
        steps = np.diff(extended)
    gaps = steps - 1
    runs = gaps[gaps > 0]
    lost, bursts = int(runs.sum()), len(runs)
    if not bursts:
        return LossBursts(0, 0, 0.0, 1.0)
    mean_length = lost / bursts
    loss_ratio = lost / (extended[-1] - extended[0] + 1)
    return LossBursts(bursts, lost, round(mean_length, 2), round(max(1.0, mean_length * (1 - loss_ratio)), 2))
