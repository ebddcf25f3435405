"""What every view shows of a call model: the RTP stream columns (name, getter, format, unit)
that the HTML report, the notebook tables, the dashboard, the CLI summary and the JSON of
`calllab analyze --json` all read, and that JSON itself.

A statistic Wireshark could not compute (see lab/analysis/rtp.py) reads "n/a: <why>" in
tables and text; the JSON keeps Wireshark's placeholder, as `tshark -z rtp,streams` prints it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.analysis.hops import NetworkHop
from lab.analysis.model import CallModel, RtpStream
from lab.analysis.rtcp import ReportBlock


def _measured(s: RtpStream) -> str:
    return ""


def _no_block(s: RtpStream) -> str:
    return s.said.why or ("" if s.said.block else "no report block (RTCP-XR only)")


def _no_xr(s: RtpStream) -> str:
    return s.said.why or ("" if s.said.xr else "no RTCP-XR VoIP metrics")


def _block(get: Callable[[ReportBlock], Any]) -> Callable[[RtpStream], Any]:
    """A receiver report block's field; None where the stream has none (the JSON's null)."""
    return lambda s: get(s.said.block) if s.said.block else None


def _xr(name: str) -> Callable[[RtpStream], Any]:
    return lambda s: getattr(s.said.xr, name) if s.said.xr else None


def _said_columns() -> tuple[Column, ...]:
    """What the stream's receiving end said in its RTCP (lab/analysis/rtcp.py): rtcp_* from its
    receiver report blocks, xr_* from its RTCP-XR VoIP metrics."""
    xr = (
        ("loss_rate_pct", "XR loss", "{:.2f}", "%"),
        ("discard_rate_pct", "XR discarded", "{:.2f}", "%"),
        ("burst_density_pct", "XR burst density", "{:.2f}", "%"),
        ("gap_density_pct", "XR gap density", "{:.2f}", "%"),
        ("burst_duration_ms", "XR burst duration", "{}", "ms"),
        ("gap_duration_ms", "XR gap duration", "{}", "ms"),
        ("round_trip_ms", "XR round trip", "{}", "ms"),
        ("end_system_delay_ms", "XR end system delay", "{}", "ms"),
        ("r_factor", "XR R", "{}", ""),
        ("mos_lq", "XR MOS-LQ", "{:.1f}", ""),
        ("mos_cq", "XR MOS-CQ", "{:.1f}", ""),
    )

    def xr_missing(name: str) -> Callable[[RtpStream], str]:
        return lambda s: _no_xr(s) or ("" if _xr(name)(s) is not None else "unavailable (127)")

    return (
        Column("rtcp_note", "RTCP", lambda s: s.said.why, left=True),
        Column("rtcp_reports", "RTCP reports", lambda s: s.said.reports, why_missing=lambda s: s.said.why),
        Column(
            "rtcp_fraction_lost_pct",
            "said loss (last interval)",
            _block(lambda b: round(b.fraction_lost / 256 * 100, 3)),
            "{:.2f}",
            "%",
            why_missing=_no_block,
        ),
        Column(
            "rtcp_cumulative_lost", "said lost", _block(lambda b: b.cumulative_lost), why_missing=_no_block
        ),
        Column(
            "rtcp_highest_seq", "said highest seq", _block(lambda b: b.highest_seq), why_missing=_no_block
        ),
        Column(
            "rtcp_jitter_ms",
            "said jitter",
            lambda s: None if s.said.jitter_ms is None else round(s.said.jitter_ms, 3),
            "{:.3f}",
            "ms",
            why_missing=lambda s: _no_block(s) or s.said.why_no_jitter,
        ),
        Column(
            "rtcp_rtt_ms",
            "RTT (LSR/DLSR)",
            lambda s: None if s.said.rtt_ms is None else round(s.said.rtt_ms, 3),
            "{:.3f}",
            "ms",
            why_missing=lambda s: _no_block(s) or s.said.why_no_rtt,
        ),
        *(
            Column(f"xr_{name}", header, _xr(name), fmt, unit, why_missing=xr_missing(name))
            for name, header, fmt, unit in xr
        ),
    )


@dataclass(frozen=True)
class Column:
    key: str  # its name in the JSON
    header: str
    get: Callable[[RtpStream], Any]  # the value; a tuple for several in one cell (min/mean/max)
    fmt: str = "{}"  # of each value in tables and text
    unit: str = ""
    left: bool = False  # text, aligned left in tables
    why_missing: Callable[[RtpStream], str] = _measured  # why there is no value ("" when there is)

    @property
    def title(self) -> str:
        """The table header: name and unit."""
        return f"{self.header} ({self.unit})" if self.unit else self.header

    def cell(self, s: RtpStream, why: bool = True) -> str:
        """The value as a table shows it, or "n/a: why" (just "n/a" without `why`)."""
        missing = self.why_missing(s)
        if missing:
            return f"n/a: {missing}" if why else "n/a"
        value = self.get(s)
        values = value if isinstance(value, tuple) else (value,)
        return " / ".join(self.fmt.format(v) for v in values)

    def text(self, s: RtpStream, why: bool = True) -> str:
        """The value in a sentence: with its unit, or "n/a (why)"."""
        missing = self.why_missing(s)
        if missing:
            return f"n/a ({missing})" if why else "n/a"
        return f"{self.cell(s)} {self.unit}".rstrip()


def _min_mean_max(name: str, why: Callable[[RtpStream], str]) -> tuple[Column, ...]:
    """min_<name>_ms, mean_<name>_ms and max_<name>_ms of the stats, and <name>_ms: all three
    in one cell."""

    def stat(kind: str) -> Callable[[RtpStream], float]:
        return lambda s: float(getattr(s.stats, f"{kind}_{name}_ms"))

    parts = tuple(
        Column(f"{kind}_{name}_ms", f"{kind} {name}", stat(kind), "{:.3f}", "ms", why_missing=why)
        for kind in ("min", "mean", "max")
    )
    return (
        *parts,
        Column(
            f"{name}_ms",
            f"min/mean/max {name}",
            lambda s: tuple(c.get(s) for c in parts),
            "{:.3f}",
            "ms",
            why_missing=why,
        ),
    )


STREAM_COLUMNS: dict[str, Column] = {
    c.key: c
    for c in (
        Column("label", "stream", lambda s: s.label, left=True),
        Column("source", "source", lambda s: f"{s.src}:{s.src_port}", left=True),
        Column("destination", "destination", lambda s: f"{s.dst}:{s.dst_port}", left=True),
        Column("src_ip", "source address", lambda s: s.src, left=True),
        Column("src_port", "source port", lambda s: s.src_port),
        Column("dst_ip", "destination address", lambda s: s.dst, left=True),
        Column("dst_port", "destination port", lambda s: s.dst_port),
        Column("ssrc", "SSRC", lambda s: s.ssrc, "0x{:08X}"),
        Column("codec", "codec", lambda s: s.codec),
        Column("packets", "packets", lambda s: s.stats.packets),
        Column("expected", "expected", lambda s: s.stats.expected),
        Column("lost", "lost", lambda s: s.stats.lost),
        Column("lost_pct", "loss", lambda s: round(s.stats.lost_pct, 3), "{:.2f}", "%"),
        Column("seq_errors", "seq errors", lambda s: s.stats.seq_errors),
        Column("loss_bursts", "loss bursts", lambda s: s.bursts.bursts),
        Column("mean_burst", "mean burst", lambda s: s.bursts.mean_length, "{:.2f}", "packets"),
        Column("burst_ratio", "BurstR", lambda s: s.bursts.burst_ratio, "{:.2f}"),
        *_min_mean_max("delta", lambda s: s.stats.why_no_delta),
        *_min_mean_max("jitter", lambda s: s.stats.why_no_jitter),
        Column(
            "max_skew_ms",
            "max skew",
            lambda s: s.stats.max_skew_ms,
            "{:.3f}",
            "ms",
            why_missing=lambda s: s.stats.why_no_skew,
        ),
        Column("r_factor", "R", lambda s: s.quality.r_factor, "{:.1f}"),
        Column("mos", "MOS", lambda s: s.quality.mos, "{:.2f}"),
        Column("ie", "Ie", lambda s: s.quality.impairment.ie),
        Column("bpl", "Bpl", lambda s: s.quality.impairment.bpl),
        Column("ie_source", "from", lambda s: s.quality.impairment.source, left=True),
        Column("delay_ms", "delay", lambda s: s.quality.delay_ms, "{:g}", "ms"),
        Column("ie_eff", "Ie,eff", lambda s: s.quality.ie_eff),
        Column("id", "Id", lambda s: s.quality.id),
        *_said_columns(),
    )
}

#: The views: which columns each shows, in order.
JSON = (
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "ssrc",
    "codec",
    "packets",
    "expected",
    "lost",
    "lost_pct",
    "seq_errors",
    "loss_bursts",
    "mean_burst",
    "burst_ratio",
    "min_delta_ms",
    "mean_delta_ms",
    "max_delta_ms",
    "min_jitter_ms",
    "mean_jitter_ms",
    "max_jitter_ms",
    "max_skew_ms",
    "ie",
    "bpl",
    "ie_source",
    "r_factor",
    "mos",
    *(k for k in STREAM_COLUMNS if k.startswith(("rtcp_", "xr_"))),
)
REPORT = (
    "label",
    "source",
    "destination",
    "ssrc",
    "codec",
    "packets",
    "expected",
    "lost",
    "lost_pct",
    "seq_errors",
    "loss_bursts",
    "mean_burst",
    "delta_ms",
    "jitter_ms",
    "max_skew_ms",
    "r_factor",
    "mos",
)
#: What the capture shows beside what the receiving end said (RTCP), and its RTCP-XR VoIP metrics.
SAID = (
    "label",
    "lost",
    "rtcp_cumulative_lost",
    "lost_pct",
    "rtcp_fraction_lost_pct",
    "jitter_ms",
    "rtcp_jitter_ms",
    "rtcp_rtt_ms",
    "rtcp_reports",
)
SAID_XR = ("label", "lost_pct", *(k for k in STREAM_COLUMNS if k.startswith("xr_")))
E_MODEL = ("label", "ie", "bpl", "ie_source", "burst_ratio", "delay_ms", "ie_eff", "id")
BRIEF = ("label", "packets", "lost", "lost_pct", "jitter_ms", "r_factor", "mos")  # notebooks, dashboard
SUMMARY = ("packets", "lost", "lost_pct", "jitter_ms", "mos")  # `calllab analyze`, after the label
LADDER = ("lost_pct", "mean_jitter_ms", "mos")  # on the ladder's RTP bands, after label and codec


def columns(keys: Sequence[str]) -> list[Column]:
    return [STREAM_COLUMNS[k] for k in keys]


@dataclass(frozen=True)
class Table:
    """Cells as text, ready for any view; lab.report.html_table draws it."""

    header: list[str]
    rows: list[list[str]]
    left: frozenset[int] = frozenset({0})  # columns of text, aligned left


def stream_table(streams: Sequence[RtpStream], keys: Sequence[str]) -> Table:
    cols = columns(keys)
    return Table(
        [c.title for c in cols],
        [[c.cell(s) for c in cols] for s in streams],
        frozenset(i for i, c in enumerate(cols) if c.left),
    )


def pesq_table(model: CallModel) -> Table:
    return Table(
        [
            "direction",
            "codec chain",
            "PESQ MOS-LQO",
            "ceiling (same chain offline)",
            "mouth to ear ms",
            "scale",
        ],
        [
            [
                p.direction,
                " > ".join(p.chain),
                f"{p.mos_lqo:.2f}",
                f"{p.ceiling:.2f}" if p.ceiling else "-",
                f"{p.mouth_to_ear_ms:.0f}" if p.mouth_to_ear_ms is not None else "-",
                p.scale + (" wideband" if p.scale == "P.862.2" else " narrowband"),
            ]
            for p in model.pesq
        ],
        frozenset({0, 1, 5}),
    )


def hop_table(hops: Sequence[NetworkHop]) -> Table:
    """What each network party did to each stream that crossed it, measured on the wire."""
    return Table(
        [
            "hop",
            "codec",
            "sent",
            "delivered",
            "lost",
            "duplicated",
            "delay min / mean / max (ms)",
            "delay sd (ms)",
        ],
        [
            [
                h.label,
                h.codec,
                str(h.sent),
                str(h.delivered),
                str(h.lost),
                str(h.duplicated),
                f"{h.delay_min_ms:.1f} / {h.delay_ms:.1f} / {h.delay_max_ms:.1f}",
                f"{h.delay_sd_ms:.1f}",
            ]
            for h in hops
        ],
        frozenset({0, 1}),
    )


def hop_json(h: NetworkHop) -> dict[str, object]:
    return {
        "network": h.network,
        "src_party": h.src_party,
        "dst_party": h.dst_party,
        "ssrc": h.ssrc,
        "codec": h.codec,
        "sent": h.sent,
        "delivered": h.delivered,
        "lost": h.lost,
        "duplicated": h.duplicated,
        "delay_ms": round(h.delay_ms, 3),
        "delay_min_ms": round(h.delay_min_ms, 3),
        "delay_max_ms": round(h.delay_max_ms, 3),
        "delay_sd_ms": round(h.delay_sd_ms, 3),
        "lost_seqs": h.lost_seqs.tolist(),
    }


def network_table(said: Sequence[Mapping[str, Any]]) -> Table:
    """What the network parties said they did (CallResult.impairments), per leg and direction."""
    return Table(
        ["network", "direction", "asked", "packets", "dropped", "duplicated", "delayed"],
        [
            [str(r.get("network")), str(r.get("direction")), str(r.get("spec") or "perfect")]
            + [str(r.get(k, "")) for k in ("packets", "dropped", "duplicated", "delayed")]
            for r in said
        ],
        frozenset({0, 1, 2}),
    )


def summary(s: RtpStream, keys: Sequence[str] = SUMMARY) -> str:
    """One line: "Browser -> Gateway opus: packets 57, lost 0, loss 0.00 %, ..."."""
    return f"{s.label}: " + ", ".join(f"{c.header} {c.text(s)}" for c in columns(keys))


def stream_json(s: RtpStream) -> dict[str, Any]:
    return {c.key: c.get(s) for c in columns(JSON)}


def model_json(model: CallModel) -> dict[str, object]:
    """The call model as `calllab analyze --json` prints it."""
    return {
        "source": model.source,
        "parties": [{"name": p.name, "address": p.address} for p in model.parties],
        "messages": [
            {
                "t": round(m.t, 6),
                "src": m.src,
                "dst": m.dst,
                "src_party": m.src_party,
                "dst_party": m.dst_party,
                "label": m.label,
                "call_id": m.call_id,
                "transport": m.transport,
                "retransmission": m.retransmission,
            }
            for m in model.messages
        ],
        "calls": [[model.dialogs[i].call_id for i in group] for group in model.calls],
        "streams": [stream_json(s) for s in model.streams],
        "pesq": [dataclasses.asdict(p) for p in model.pesq],
        "hops": [hop_json(h) for h in model.hops],
        "tcp_retransmissions": model.tcp_retransmissions,
        "truncated": model.truncated,
    }
