"""RTCP in a capture: what each end of an RTP stream *said* it saw, beside what the capture
shows (lab/analysis/rtp.py). Read as Wireshark dissects it (packet-rtcp.c), one UDP datagram
being a compound packet: RTCP headers (version 2, packet type 200-207) whose lengths add up to
the datagram.

Receiver report blocks (RFC 3550 section 6.4.1, in SR and RR packets), about source S, sent by
the end that receives S:
    fraction lost (%)  = fraction / 256 * 100     loss since the reporter's previous report
    cumulative lost    = expected - received      signed 24 bits, over the whole stream
    extended highest   = cycles * 65536 + highest sequence number received
    jitter (ms)        = jitter / clock rate * 1000   (the RFC 3550 filter, in timestamp units)
    RTT (ms)           = t(report) - t(SR) - DLSR / 65536 s
where the SR is the one S's sender sent whose NTP timestamp's middle 32 bits equal the block's
LSR, and both times are the capture's: the round trip as seen from the capture point (Wireshark's
rtcp.roundtrip-delay, which tshark computes with `-o rtcp.show_roundtrip_calculation:TRUE`).

RTCP-XR VoIP metrics (RFC 3611 section 4.7, block type 7), about source S:
    loss, discard, burst density, gap density (%) = field / 256 * 100
    burst, gap duration; round trip, end system delay: ms as sent
    R factor: as sent, 127 = unavailable;  MOS-LQ, MOS-CQ = field / 10, 127 = unavailable

SRTCP (RFC 3711, the browser leg's) keeps the first header in clear and encrypts the rest, then
appends an index and an authentication tag: the lengths do not add up, and nothing in it can be
read. A stream whose receiver sends only SRTCP says so instead of showing nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from lab.analysis.pcap import Packets

SR, RR, XR = 200, 201, 207
_VOIP_METRICS = 7
_UNAVAILABLE = 127


@dataclass(frozen=True)
class ReportBlock:
    """One reception report block (RFC 3550 section 6.4.1) as it was sent."""

    reporter: int  # SSRC of the end that sent it
    source: int  # SSRC of the stream it is about
    fraction_lost: int  # of 256
    cumulative_lost: int
    highest_seq: int  # extended
    jitter: int  # timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR received from source; 0: none
    dlsr: int  # 1/65536 s since that SR


@dataclass(frozen=True)
class VoipMetrics:
    """An RTCP-XR VoIP metrics block (RFC 3611 section 4.7), scaled as the docstring says."""

    reporter: int
    source: int
    loss_rate_pct: float
    discard_rate_pct: float
    burst_density_pct: float
    gap_density_pct: float
    burst_duration_ms: int
    gap_duration_ms: int
    round_trip_ms: int
    end_system_delay_ms: int
    r_factor: int | None
    mos_lq: float | None
    mos_cq: float | None


@dataclass(frozen=True)
class Compound:
    """One RTCP datagram: where it came from, and what it holds (nothing when SRTCP)."""

    frame: int  # 0-based, as in pcap.Udp
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    encrypted: bool
    sender_reports: tuple[tuple[int, int], ...]  # (sender SSRC, NTP middle 32 bits)
    blocks: tuple[ReportBlock, ...]
    xr: tuple[VoipMetrics, ...]


@dataclass(frozen=True)
class Said:
    """What a stream's receiving end said about it in its last RTCP report on it; `why` says why
    there is nothing ("" when there is)."""

    why: str = "no RTCP report on it in the capture"
    reports: int = 0  # report blocks about the stream from its receiver
    block: ReportBlock | None = None
    jitter_ms: float | None = None
    why_no_jitter: str = ""
    rtt_ms: float | None = None
    why_no_rtt: str = ""
    xr: VoipMetrics | None = None


NOTHING_SAID = Said()
ENCRYPTED = "SRTCP (encrypted)"


def _rate(value: int) -> float:
    return round(value / 256 * 100, 3)


def _voip_metrics(reporter: int, body: bytes) -> VoipMetrics:
    (source, loss, discard, burst_d, gap_d, burst_ms, gap_ms, rtt, esd) = struct.unpack_from(
        "!IBBBBHHHH", body
    )
    r_factor, _ext_r, mos_lq, mos_cq = struct.unpack_from("!BBBB", body, 20)
    return VoipMetrics(
        reporter,
        source,
        _rate(loss),
        _rate(discard),
        _rate(burst_d),
        _rate(gap_d),
        burst_ms,
        gap_ms,
        rtt,
        esd,
        None if r_factor == _UNAVAILABLE else r_factor,
        None if mos_lq == _UNAVAILABLE else mos_lq / 10,
        None if mos_cq == _UNAVAILABLE else mos_cq / 10,
    )


def _report_blocks(reporter: int, data: bytes, at: int, count: int, end: int) -> list[ReportBlock]:
    blocks = []
    for k in range(count):
        pos = at + 24 * k
        if pos + 24 > end:
            break
        source, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:  # signed: duplicates can make it negative
            cumulative -= 1 << 24
        blocks.append(ReportBlock(reporter, source, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr))
    return blocks


def _xr_blocks(reporter: int, data: bytes, at: int, end: int) -> list[VoipMetrics]:
    found = []
    while at + 4 <= end:
        block_type, _, words = struct.unpack_from("!BBH", data, at)
        body_end = at + 4 + 4 * words
        if body_end > end:
            break
        if block_type == _VOIP_METRICS and words == 8:
            found.append(_voip_metrics(reporter, data[at + 4 : body_end]))
        at = body_end
    return found


def parse(data: bytes) -> tuple[list[tuple[int, int]], list[ReportBlock], list[VoipMetrics]] | None:
    """Sender reports (sender SSRC, NTP middle 32 bits), report blocks and XR VoIP metrics of
    one compound RTCP packet; None when its headers do not add up to it (SRTCP, or not RTCP)."""
    srs: list[tuple[int, int]] = []
    blocks: list[ReportBlock] = []
    xr: list[VoipMetrics] = []
    at = 0
    while at < len(data):
        if at + 8 > len(data) or data[at] >> 6 != 2 or not 200 <= data[at + 1] <= 207:
            return None
        count, pt = data[at] & 0x1F, data[at + 1]
        end = at + 4 + 4 * struct.unpack_from("!H", data, at + 2)[0]
        if end > len(data):
            return None
        (ssrc,) = struct.unpack_from("!I", data, at + 4)
        if pt == SR and at + 28 <= end:
            msw, lsw = struct.unpack_from("!II", data, at + 8)
            srs.append((ssrc, ((msw & 0xFFFF) << 16) | (lsw >> 16)))
            blocks += _report_blocks(ssrc, data, at + 28, count, end)
        elif pt == RR:
            blocks += _report_blocks(ssrc, data, at + 8, count, end)
        elif pt == XR:
            xr += _xr_blocks(ssrc, data, at + 8, end)
        at = end
    return srs, blocks, xr


def read(packets: Packets) -> tuple[Compound, ...]:
    """Every UDP datagram that starts with an RTCP header, in capture order."""
    udp, data = packets.udp, packets.frames.data
    usable = udp.length >= 8
    at = np.where(usable, udp.payload, 0)
    second = data[np.minimum(at + 1, len(data) - 1)]
    candidates = np.nonzero(usable & (data[at] >> 6 == 2) & (second >= 200) & (second <= 207))[0]
    found = []
    for i in candidates.tolist():
        parsed = parse(packets.payload(i))
        srs, blocks, xr = parsed if parsed is not None else ([], [], [])
        found.append(
            Compound(
                int(udp.frame[i]),
                float(udp.ts[i]),
                udp.addresses[int(udp.src[i])],
                int(udp.sport[i]),
                udp.addresses[int(udp.dst[i])],
                int(udp.dport[i]),
                parsed is None,
                tuple(srs),
                tuple(blocks),
                tuple(xr),
            )
        )
    return tuple(found)


def said(compounds: tuple[Compound, ...], src: str, dst: str, ssrc: int, clock_rate: int) -> Said:
    """What the receiving end (dst) of the stream `ssrc` from src said about it, in the RTCP it
    sent back to src."""
    back = [c for c in compounds if c.src == dst and c.dst == src]
    blocks = [(c, b) for c in back for b in c.blocks if b.source == ssrc]
    xr = [x for c in back for x in c.xr if x.source == ssrc]
    if not blocks and not xr:
        return Said(why=ENCRYPTED) if any(c.encrypted for c in back) else NOTHING_SAID
    # The SRs the stream's sender sent, by the NTP middle 32 bits a report block echoes as LSR.
    sent = {
        ntp: c.ts
        for c in compounds
        if c.src == src and c.dst == dst
        for s, ntp in c.sender_reports
        if s == ssrc
    }
    rtts = [c.ts - sent[b.lsr] - b.dlsr / 65536 for c, b in blocks if b.lsr and b.lsr in sent]
    last = blocks[-1][1] if blocks else None
    why_no_jitter = "" if clock_rate else "clock rate unknown"
    return Said(
        why="",
        reports=len(blocks),
        block=last,
        jitter_ms=last.jitter / clock_rate * 1000 if last and clock_rate else None,
        why_no_jitter=why_no_jitter if last else "no report block (XR only)",
        rtt_ms=rtts[-1] * 1000 if rtts else None,
        why_no_rtt="" if rtts else "no report echoes a sender report in the capture",
        xr=xr[-1] if xr else None,
    )
