"""Figures of a call, each a pure function of the call model (no pyplot state, no I/O)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lab.analysis.columns import LADDER, columns
from lab.analysis.ladder import ladder_rows
from lab.analysis.model import CallModel, RtpStream

ROW_INCH = 0.36
GAP_S = 0.5  # a pause longer than this between messages gets GAP_ROWS of room (media flows)
GAP_ROWS = 3
PARTY_INCH = 2.3
FAILURE = "#c62828"
EVENT = "#1565c0"
NORMAL = "#222222"
RETRANSMITTED = "#9e9e9e"
WEBRTC = "#6a1b9a"  # the browser leg's ICE checks and DTLS handshake
CHAR_WIDTH = 0.6  # of a label's average character, in font sizes (about: DejaVu Sans)
TEXT_LEFT = -0.25  # where the time column ends, in lifeline units
BADGE = 0.16  # a step badge's room right of its arrow's left end


def png(fig: Figure) -> bytes:
    """A figure as PNG bytes: what the report embeds, widgets show and notebooks display."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _colour(style: str) -> str:
    colours = {"failure": FAILURE, "retransmission": RETRANSMITTED, "event": EVENT, "webrtc": WEBRTC}
    return colours.get(style, NORMAL)


def ladder(model: CallModel, marks: Mapping[int, str] | None = None) -> Figure:
    """SIP ladder: one lifeline per party in call-path order, every message an arrow in time
    order with its time offset, SDP notes, and the RTP streams as bands between parties.
    `marks` puts a numbered badge on rows (indexes into ladder_rows), e.g. the seed's steps."""
    # Its text comes from the wire: a "$" in a SIP message is a dollar, not TeX (mathtext
    # raised on an unbalanced one and ended the call's report).
    with matplotlib.rc_context({"text.parse_math": False}):
        return _ladder(model, marks)


def _ladder(model: CallModel, marks: Mapping[int, str] | None) -> Figure:
    rows = ladder_rows(model)
    names = [p.name for p in model.parties]
    for r in rows:  # parties seen only in lab events
        for n in (r.src, r.dst):
            if n not in names:
                names.append(n)
    x = {name: i for i, name in enumerate(names)}
    ys = _row_positions([r.t for r in rows])
    bottom = float(ys[-1]) + 1 if len(ys) else 1.0
    height = max(3.0, 1.2 + ROW_INCH * (bottom + 1))
    fig = Figure(figsize=(max(8.0, PARTY_INCH * len(names) + 1.5), height), dpi=100)
    ax = fig.add_axes((0.09, 0.02, 0.89, 1 - 0.9 / height))
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(bottom + 0.2, -0.8)
    ax.axis("off")
    networks = {h.network for h in model.hops}
    for name, i in x.items():
        if name in networks:  # relays media only: a dashed lifeline, no SIP
            ax.plot([i, i], [-0.5, bottom], color="#ef6c00", lw=1.2, ls="--", zorder=1)
            ax.text(i, -0.7, f"{name}\n(network)", ha="center", va="bottom", fontsize=10, color="#ef6c00")
        else:
            ax.plot([i, i], [-0.5, bottom], color="#90a4ae", lw=1.2, zorder=1)
            ax.text(i, -0.7, name, ha="center", va="bottom", fontsize=10, weight="bold")
    times = np.array([r.t for r in rows]) if rows else np.zeros(0)
    for k in range(1, len(ys)):
        if ys[k] - ys[k - 1] > 1:
            ax.text(
                -0.58,
                (ys[k] + ys[k - 1]) / 2,
                f"... {times[k] - times[k - 1]:.2f} s ...",
                fontsize=7,
                va="center",
                color="#888888",
                style="italic",
            )
    _stream_bands(ax, model, x, times, ys)
    for row, (y, r) in enumerate(zip(ys, rows, strict=True)):
        colour = _colour(r.style)
        a, b = x[r.src], x[r.dst]
        ax.text(-0.58, y, f"{r.t:+.3f} s", fontsize=7, va="center", color="#555555", family="monospace")
        if a == b:
            ax.annotate(
                "",
                (a + 0.02, y + 0.25),
                (a + 0.02, y - 0.05),
                zorder=3,
                arrowprops={"arrowstyle": "->", "color": colour, "connectionstyle": "arc3,rad=-1.5"},
            )
        else:
            ax.annotate(
                "",
                (b, y),
                (a, y),
                zorder=3,
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": colour,
                    "lw": 1.3,
                    "linestyle": "--" if r.style in ("retransmission", "event") else "-",
                },
            )
        mid = (a + b) / 2
        column_inch = fig.get_figwidth() * 0.89 / len(names)
        if marks and row in marks:
            badge = {"boxstyle": "circle,pad=0.25", "facecolor": "#ef6c00", "lw": 0}
            ax.text(
                min(a, b) + 0.08,
                y - 0.1,
                marks[row],
                ha="center",
                va="bottom",
                fontsize=8,
                color="white",
                weight="bold",
                zorder=5,
                bbox=badge,
            )
        ax.text(
            _centre(mid, r.label, 8, column_inch, min(a, b) + BADGE if marks and row in marks else TEXT_LEFT),
            y - 0.08,
            r.label,
            ha="center",
            va="bottom",
            fontsize=8,
            color=colour,
            zorder=4,
            weight="bold" if r.style == "failure" else "normal",
        )
        if r.note:
            ax.text(
                _centre(mid, r.note, 6.5, column_inch, TEXT_LEFT),
                y + 0.08,
                r.note,
                ha="center",
                va="top",
                fontsize=6.5,
                color="#546e7a",
                zorder=4,
            )
    if not rows:
        ax.text(0, 0, "no SIP messages", fontsize=10)
    return fig


def _centre(mid: float, text: str, points: float, column_inch: float, left: float) -> float:
    """Where a centred text goes so that a long one (a DTLS flight between the first two
    lifelines) starts right of the time column instead of over it."""
    half = len(text) * points * CHAR_WIDTH / 72 / column_inch / 2
    return max(mid, left + half)


def _row_positions(times: list[float]) -> np.ndarray:
    """One row per message, plus room wherever the call pauses (that is where media flows)."""
    if not times:
        return np.zeros(0)
    steps = [0.0] + [1.0 + (GAP_ROWS if b - a > GAP_S else 0) for a, b in zip(times, times[1:], strict=False)]
    return np.cumsum(steps)


def _quiet_spot(ys: np.ndarray, y0: float, y1: float) -> float:
    """The middle of the widest pause between y0 and y1, where a label hides no arrow."""
    gaps = [(b - a, (a + b) / 2) for a, b in zip(ys, ys[1:], strict=False) if a >= y0 - 0.5 and b <= y1 + 0.5]
    widest = max(gaps, default=(0.0, (y0 + y1) / 2))
    return widest[1] if widest[0] > 1 else (y0 + y1) / 2


def _stream_bands(ax: Axes, model: CallModel, x: dict[str, int], times: np.ndarray, ys: np.ndarray) -> None:
    """Each pair of parties' RTP as a shaded band over the rows during which it flowed."""
    pairs: dict[tuple[str, str], list[RtpStream]] = {}
    for s in model.streams:
        if s.src_party in x and s.dst_party in x:
            a, b = sorted((s.src_party, s.dst_party), key=lambda n: x[n])
            pairs.setdefault((a, b), []).append(s)
    for k, ((left, right), streams) in enumerate(sorted(pairs.items(), key=lambda kv: x[kv[0][0]])):
        start = min(s.stats.start for s in streams) - model.start
        end = max(s.stats.end for s in streams) - model.start
        y0 = float(np.interp(start, times, ys)) if len(times) else 0.0
        y1 = float(np.interp(end, times, ys)) if len(times) else 1.0
        y1 = max(y1, y0 + 0.8)
        xa, xb = x[left], x[right]
        ax.add_patch(
            Rectangle((xa + 0.04, y0), xb - xa - 0.08, y1 - y0, color="#a5d6a7", alpha=0.35, zorder=0, lw=0)
        )
        text = "\n".join(
            f"{s.src_party} -> {s.dst_party}\n{'SRTP ' if model.srtp(s) else ''}{s.codec}  "
            + "  ".join(f"{c.header} {c.text(s, why=False)}" for c in columns(LADDER))
            for s in streams
        )
        middle = _quiet_spot(ys, y0, y1) + (k % 2 - 0.5) * 0.9
        ax.text(
            (xa + xb) / 2,
            middle,
            text,
            ha="center",
            va="center",
            fontsize=6.5,
            color="#1b5e20",
            zorder=2,
            bbox={"facecolor": "white", "alpha": 0.75, "lw": 0},
        )


def jitter(model: CallModel) -> Figure:
    """Jitter over time per RTP stream: Wireshark's, at the packets its min/mean/max count, so
    the plot shows what the stream table says; a stream without any says why in the legend."""
    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for s in model.streams:
        counted = s.series.jitter_counted
        why = s.stats.why_no_jitter
        ax.plot(
            s.series.t[counted] + (s.stats.start - model.start),
            s.series.jitter_ms[counted],
            lw=1,
            label=f"{s.label} (n/a: {why})" if why else s.label,
        )
    ax.set_xlabel("time since capture start (s)")
    ax.set_ylabel("jitter (ms)")
    ax.set_title("RTP jitter per stream")
    ax.grid(alpha=0.3)
    if model.streams:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def loss(model: CallModel) -> Figure:
    """Packets lost and sequence errors per RTP stream."""
    fig = Figure(figsize=(9, 0.5 + 0.45 * max(1, len(model.streams))), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    labels = [s.label for s in model.streams]
    y = np.arange(len(labels))
    ax.barh(y, [s.stats.lost_pct for s in model.streams], color="#ef5350", label="lost %")
    for i, s in enumerate(model.streams):
        ax.text(
            s.stats.lost_pct,
            i,
            f" {s.stats.lost} lost of {s.stats.expected}, {s.stats.seq_errors} seq errors",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("packet loss (%)")
    ax.set_xlim(0, max(1.0, max((s.stats.lost_pct for s in model.streams), default=0) * 1.6))
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def hops(model: CallModel) -> Figure:
    """What each network party did, over the call: every packet's delay across it (top) and
    when the packets it lost entered it (bottom, one row per hop)."""
    fig = Figure(figsize=(9, 4.5), dpi=100)
    delay_ax, loss_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    for i, hop in enumerate(model.hops):
        colour = f"C{i}"
        delay_ax.plot(hop.t, hop.delays_ms, ".", markersize=2.5, color=colour, label=hop.label)
        loss_ax.plot(hop.lost_t, np.full(len(hop.lost_t), i), "|", markersize=9, color=colour)
    delay_ax.set_ylabel("delay across the network (ms)")
    delay_ax.legend(fontsize=7, loc="upper right")
    loss_ax.set_yticks(range(len(model.hops)), [f"{h.lost} lost" for h in model.hops], fontsize=7)
    loss_ax.set_ylim(-0.5, len(model.hops) - 0.5)
    loss_ax.invert_yaxis()
    loss_ax.set_xlabel("time since the capture started (s)")
    fig.tight_layout()
    return fig


def quality(model: CallModel) -> Figure:
    """E-model MOS per stream beside PESQ per direction and its codec-chain ceiling."""
    fig = Figure(figsize=(9, 3.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"E-model\n{s.src_party}->{s.dst_party}" for s in model.streams]
    values = [s.quality.mos for s in model.streams]
    colours = ["#42a5f5"] * len(values)
    for p in model.pesq:
        labels.append(f"PESQ\n{p.direction.replace(' -> ', '->')}")
        values.append(p.mos_lqo)
        colours.append("#ab47bc")
    ax.bar(range(len(values)), values, color=colours)
    for i, p in enumerate(model.pesq, start=len(model.streams)):
        if p.ceiling is not None:
            ax.plot([i - 0.4, i + 0.4], [p.ceiling, p.ceiling], color="black", lw=2)
            ax.text(i, p.ceiling + 0.05, f"ceiling {p.ceiling:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(values)), labels, fontsize=6.5)
    ax.set_ylim(1, 4.8)
    ax.set_ylabel("MOS")
    ax.set_title("Quality: E-model (G.107) per stream, PESQ (P.862) per direction")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def codec_comparison(models: Mapping[str, CallModel]) -> Figure:
    """PESQ per direction for calls that differ in one codec choice, beside their ceilings."""
    fig = Figure(figsize=(9, 3.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    directions = sorted({p.direction for m in models.values() for p in m.pesq})
    width = 0.8 / max(1, len(directions))
    for d, direction in enumerate(directions):
        for i, model in enumerate(models.values()):
            row = next((p for p in model.pesq if p.direction == direction), None)
            if row is None:
                continue
            x = i + (d - (len(directions) - 1) / 2) * width
            ax.bar(
                x,
                row.mos_lqo,
                width * 0.9,
                color=("#42a5f5", "#ab47bc")[d % 2],
                label=direction if i == 0 else None,
            )
            if row.ceiling is not None:
                ax.plot([x - width * 0.45, x + width * 0.45], [row.ceiling] * 2, color="black", lw=2)
            ax.text(x, row.mos_lqo + 0.03, f"{row.mos_lqo:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(models)), list(models), fontsize=9)
    ax.set_ylim(1, 4.8)
    ax.set_ylabel("PESQ MOS-LQO")
    ax.set_title("PESQ per direction by codec (black bar: the codec chain's offline ceiling)")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


SWEEP_SIDES = (("to_phone", "browser -> mobile phone"), ("to_browser", "mobile phone -> browser"))


def sweep(
    rows: Sequence[Mapping[str, Any]], x: str, lines: Sequence[str], metric: str, x_label: str = ""
) -> Figure:
    """One of a sweep's measures (`pesq` or `mos`) against the swept column `x`, one panel per
    direction: a line per combination of the `lines` columns (the codecs) through the median
    of the repeats, each repeat a point, and for PESQ the codec chain's ceiling dashed.
    Only calls that went well count; a pure function of the rows."""
    fig = Figure(figsize=(11, 3.8), dpi=100)
    axes = fig.subplots(1, 2, sharey=True)
    good = [r for r in rows if r.get("ok")]
    keys = sorted({tuple(str(r.get(c)) for c in lines) for r in good})
    colours = [f"C{i}" for i in range(10)]
    for ax, (side, title) in zip(axes, SWEEP_SIDES, strict=True):
        for k, key in enumerate(keys):
            mine = [r for r in good if tuple(str(r.get(c)) for c in lines) == key]
            colour = colours[k % len(colours)]
            points = _pairs(mine, x, f"{side}_{metric}")
            if not points:
                continue
            xs = sorted({px for px, _ in points})
            label = ", ".join(key) or metric
            ax.scatter(*zip(*points, strict=True), color=colour, alpha=0.35, s=14)
            ax.plot(
                xs,
                [_median([py for px, py in points if px == v]) for v in xs],
                "-o",
                color=colour,
                label=label,
            )
            if metric == "pesq":
                known = _pairs(mine, x, f"{side}_ceiling")
                if known:
                    ax.plot(
                        xs,
                        [_median([c for px, c in known if px == v] or [float("nan")]) for v in xs],
                        "--",
                        color=colour,
                        lw=1,
                        label=f"{label} ceiling",
                    )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x_label or x)
        ax.grid(alpha=0.3)
        ax.set_ylim(1, 4.8)
    axes[0].set_ylabel("PESQ MOS-LQO" if metric == "pesq" else "E-model MOS (receiving stream)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(
        ("PESQ (P.862)" if metric == "pesq" else "E-model (G.107)")
        + " against the swept parameter: line = median of repeats, points = repeats",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _pairs(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) of the rows that have a y; a row without x (nothing swept) sits at 0."""
    return [(float(r.get(x) or 0.0), float(r[y])) for r in rows if r.get(y) is not None]


def _median(values: Sequence[float]) -> float:
    return float(np.median(values))
