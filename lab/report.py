"""One self-contained HTML file per call: parties, ladder, streams, plots, quality, and the
SIP messages (credentials redacted). A pure function of the call model."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from lab import plots
from lab.analysis.columns import E_MODEL, REPORT, SAID, SAID_XR, Table, hop_table, pesq_table, stream_table
from lab.analysis.model import CallModel
from lab.analysis.quality import MIN_JITTER_BUFFER_MS, PTIME_MS

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#eceff1}
pre{background:#f5f5f5;padding:8px;font-size:12px;white-space:pre-wrap}
img{max-width:100%}details{margin:4px 0}.fail{color:#c62828}
"""


def _png(fig: Figure) -> str:
    return '<img alt="figure" src="data:image/png;base64,' + base64.b64encode(plots.png(fig)).decode() + '">'


def html_table(table: Table) -> str:
    """The one HTML table of the lab: the report's, the notebooks' and the dashboard's."""

    def cells(tag: str, texts: list[str]) -> str:
        return "".join(
            f'<{tag} style="text-align:{"left" if i in table.left else "right"}">{html.escape(t)}</{tag}>'
            for i, t in enumerate(texts)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in table.rows)
    return f"<table><tr>{cells('th', table.header)}</tr>{body}</table>"


def render(model: CallModel, title: str | None = None) -> str:
    title = title or f"Call report: {Path(model.source).name}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    failures = [m for m in model.messages if m.failure]
    summary = (
        f"{len(model.messages)} SIP messages, {len(model.dialogs)} dialogs, {len(model.streams)} RTP streams"
    )
    if failures:
        summary += f", failures: {', '.join(sorted({m.label for m in failures}))}"
    parts.append(f"<p>{html.escape(summary)}</p>")
    if model.truncated:
        parts.append("<p class='fail'>The capture file is truncated: its last packet is incomplete.</p>")
    parties = Table(["party", "address"], [[p.name, p.address] for p in model.parties], frozenset({0, 1}))
    parts.append("<h2>Parties</h2>" + html_table(parties))
    if model.messages:
        parts.append("<h2>SIP ladder</h2>" + _png(plots.ladder(model)))
    else:
        parts.append(
            "<h2>SIP ladder</h2><p>No SIP in this capture: the RTP streams below were found as "
            "Wireshark's RTP heuristic finds them (UDP flows whose every packet is RTP).</p>"
        )
    parts.append("<h2>RTP streams</h2>" + html_table(stream_table(model.streams, REPORT)))
    if model.streams:
        parts.append(_png(plots.jitter(model)) + _png(plots.loss(model)))
    if model.streams:
        parts.append(
            "<h2>What each receiver said (RTCP)</h2><p>Beside the capture's figures, what each "
            "stream's receiving end reported about it in its last RTCP receiver report (RFC 3550): "
            "loss over the last report interval, packets lost over the stream, interarrival jitter "
            "in the stream's clock; RTT from the report's LSR/DLSR and the sender report it echoes, "
            "as the capture saw them.</p>" + html_table(stream_table(model.streams, SAID))
        )
        if any(s.said.xr for s in model.streams):
            parts.append(
                "<p>RTCP-XR VoIP metrics (RFC 3611), as the receiving end sent them:</p>"
                + html_table(stream_table(model.streams, SAID_XR))
            )
    if model.hops:
        parts.append(
            "<h2>Networks</h2><p>Each stream that crossed a network party, seen on the wire as it "
            "entered the network and as it left: what the network lost, duplicated and delayed.</p>"
            + html_table(hop_table(model.hops))
            + _png(plots.hops(model))
        )
    parts.append("<h2>Quality</h2>")
    if model.pesq:
        parts.append(html_table(pesq_table(model)))
    if model.streams or model.pesq:
        parts.append(_png(plots.quality(model)))
    parts.append(
        "<p>E-model (ITU-T G.107): R0-Is = 93.2 and A = 0 (defaults); Ie and Bpl per codec from "
        "G.113 where listed, else assumed (see table); packet-loss concealment on, random loss; "
        f"one-way delay = {PTIME_MS:g} ms packetisation + a jitter buffer of "
        f"max({MIN_JITTER_BUFFER_MS:g} ms, 2 x max jitter). PESQ (ITU-T P.862, narrowband) compares "
        "what one side's speaker heard with the prompt the other side played; the ceiling is the "
        "same prompt passed offline through the same codecs.</p>"
    )
    parts.append(html_table(stream_table(model.streams, E_MODEL)))
    parts.append("<h2>SIP messages</h2>")
    for m in model.messages:
        flag = " (retransmission)" if m.retransmission else ""
        cls = " class='fail'" if m.failure else ""
        parts.append(
            f"<details><summary{cls}>#{m.frame} +{m.t:.3f} s {html.escape(m.src_party)} -&gt; "
            f"{html.escape(m.dst_party)} {m.transport}: {html.escape(m.label)}{flag}</summary>"
            f"<pre>{html.escape(m.raw)}</pre></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write(model: CallModel, path: Path, title: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(model, title))
    return path


#: The sweep report's measures per direction: (row column after "to_phone_", header).
SWEEP_MEASURES = (
    ("dropped", "dropped by the network"),
    ("loss_pct", "loss at receiver (%)"),
    ("jitter_ms", "jitter (ms)"),
    ("delay_ms", "network delay (ms)"),
    ("pesq", "PESQ"),
    ("ceiling", "ceiling"),
    ("mos", "E-model MOS"),
)


def render_sweep(
    rows: Sequence[Mapping[str, Any]],
    title: str,
    x: str,
    x_label: str,
    lines: Sequence[str],
    notes: Sequence[str] = (),
) -> str:
    """A sweep's report: PESQ and E-model MOS against the swept parameter, then every call.
    A pure function of the rows."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(n)}</p>" for n in notes),
        "<h2>PESQ</h2>" + _png(plots.sweep(rows, x, lines, "pesq", x_label)),
        "<h2>E-model</h2>" + _png(plots.sweep(rows, x, lines, "mos", x_label)),
    ]
    failed = [r for r in rows if not r.get("ok")]
    if failed:
        parts.append("<h2 class='fail'>Failed calls</h2><ul>")
        for r in failed:
            what = html.escape(f"{r.get('spec')}: {r.get('status')} {r.get('reason')}")
            parts.append(f"<li>#{r.get('index')} {what}</li>")
        parts.append("</ul>")

    def cell(row: Mapping[str, Any], key: str) -> str:
        value = row.get(key)
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    keys = ["index", *lines, "spec", "status"]
    headers = ["#", *lines, "impairment", "status"]
    for side, name in (("to_phone", "to phone"), ("to_browser", "to browser")):
        keys += [f"{side}_{k}" for k, _ in SWEEP_MEASURES]
        headers += [f"{h} {name}" for _, h in SWEEP_MEASURES]
    keys.append("call_id")
    headers.append("call")
    left = frozenset({*range(1, len(lines) + 3), len(keys) - 1})
    table = Table(headers, [[cell(r, k) for k in keys] for r in rows], left)
    parts.append("<h2>Calls</h2>" + html_table(table) + "</body></html>")
    return "\n".join(parts)
