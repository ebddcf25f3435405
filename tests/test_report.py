from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from lab import plots, report
from lab.analysis.columns import REPORT, columns
from lab.analysis.ladder import ladder_rows
from lab.analysis.model import CallModel, load
from lab.analysis.synth import Datagram, write_pcap
from lab.analysis.wireshark import fields, rtp_streams
from lab.config import LabConfig
from lab.sip.sdp import Codec

FIXTURE = Path(__file__).parent / "fixtures" / "lab_call.pcapng"
#: What `analyze` adds for a lab call from its call.json: the browser leg's Opus, whose SDP
#: travelled over the client's WebSocket and so is not in the capture.
OPUS = {96: Codec(96, "opus", 48000)}
PRINTED = 0.0015  # tshark prints 3 decimals


class Page(HTMLParser):
    """The parts of a report the tests read: tables (by the heading before them), the SIP
    messages' summaries and raw texts, and the images."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.summaries: list[str] = []
        self.raw: list[str] = []
        self.images: list[str] = []
        self._text: list[str] | None = None
        self._row: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th", "summary", "pre"):
            self._text = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text or [])
        if tag in ("td", "th") and self._row is not None:
            self._row.append(text)
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "summary":
            self.summaries.append(text)
        elif tag == "pre":
            self.raw.append(text)
        if tag in ("td", "th", "summary", "pre"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def table(self, first_header: str, second_header: str) -> list[dict[str, str]]:
        """The table whose first two headers are these, as one dict per row."""
        found = [t for t in self.tables if t[0][:2] == [first_header, second_header]]
        assert len(found) == 1, [t[0] for t in self.tables]
        header, *rows = found[0]
        return [dict(zip(header, row, strict=True)) for row in rows]


def rendered(fallback: dict[int, Codec] | None = None) -> tuple[CallModel, Page]:
    model = load(FIXTURE, fallback_pts=fallback)
    return model, Page(report.render(model))


def test_report_names_the_lab_parties_in_call_path_order() -> None:
    _, page = rendered()
    cfg = LabConfig()
    in_capture = (cfg.browser, cfg.gateway, cfg.sipserver, cfg.pstn, cfg.phone)
    assert page.table("party", "address") == [{"party": p.name, "address": p.host} for p in in_capture]


def test_report_lists_every_sip_message_in_capture_order() -> None:
    """Wireshark's own dissection of the fixture is the reference: frame numbers and start
    lines in order, each summary naming the frame and its label."""
    model, page = rendered()
    wireshark = fields(FIXTURE, "sip", "frame.number", "sip.Request-Line", "sip.Status-Line")
    assert len(wireshark) == 32
    start_lines = [request or status for _, request, status in wireshark]
    assert [raw.splitlines()[0] for raw in page.raw] == start_lines
    frames = [int(re.match(r"#(\d+) ", s).group(1)) for s in page.summaries]  # type: ignore[union-attr]
    assert frames == [int(frame) for frame, _, _ in wireshark]
    labels = [s.split(": ", 1)[1].removesuffix(" (retransmission)") for s in page.summaries]
    assert labels == ["REGISTER", "401 Unauthorized", "REGISTER", "200 OK", "INVITE"] + labels[5:]
    assert labels == [r.label.split(" (")[0] for r in ladder_rows(model) if r.style != "webrtc"]


def test_report_stream_rows_are_the_column_spec_and_equal_wireshark() -> None:
    model, page = rendered(OPUS)
    rows = page.table("stream", "source")
    spec = columns(REPORT)
    assert list(rows[0]) == [c.title for c in spec]
    assert [list(r.values()) for r in rows] == [[c.cell(s) for c in spec] for s in model.streams]
    wireshark = {(r.src, r.src_port, r.dst, r.dst_port): r for r in rtp_streams(FIXTURE)}
    assert len(wireshark) == 4  # the SIP legs: the browser leg's SDP is not in the capture
    for s, row in zip(model.streams, rows, strict=True):
        assert row["stream"] == s.label and row["SSRC"] == f"0x{s.ssrc:08X}"
        assert (row["packets"], row["lost"]) == (str(s.stats.packets), str(s.stats.lost))
        ref = wireshark.get((s.src, s.src_port, s.dst, s.dst_port))
        if ref is None:  # aiortc sets the marker bit on every audio packet: Wireshark counts none
            assert s.codec == "opus"
            assert row["min/mean/max jitter (ms)"] == "n/a: every packet carries the RTP marker bit"
            assert row["min/mean/max delta (ms)"] == "n/a: every packet carries the RTP marker bit"
            continue
        assert int(row["packets"]) == ref.packets and int(row["lost"]) == ref.lost
        for kind in ("delta", "jitter"):
            shown = [float(x) for x in row[f"min/mean/max {kind} (ms)"].split(" / ")]
            expected = [getattr(ref, f"{m}_{kind}_ms") for m in ("min", "mean", "max")]
            assert shown == pytest.approx(expected, abs=PRINTED), (s.label, kind)
    assert "-1.000" not in str(rows)


def test_report_shows_no_credentials() -> None:
    """The fixture's REGISTER and INVITE carry digest credentials; the report shows the
    headers redacted and none of their values."""
    raw = FIXTURE.read_bytes().decode("latin-1")
    headers = re.findall(r"^(?:Proxy-)?Authorization: (Digest [^\r\n]+)", raw, re.MULTILINE)
    secrets = {v for h in headers for v in re.findall(r'(?:response|cnonce)="?([^",\s]+)', h)}
    assert len(headers) == 3 and len(secrets) == 5
    text = report.render(load(FIXTURE))
    assert not any(secret in text for secret in secrets)
    shown = [line for message in Page(text).raw for line in message.splitlines() if "Authorization:" in line]
    assert [line.split(":")[0] for line in shown] == ["Authorization", "Proxy-Authorization", "Authorization"]
    assert all(line.endswith(": [redacted]") for line in shown)
    assert "password" not in text.lower()


def test_report_embeds_the_four_figures_as_png() -> None:
    model, page = rendered()
    figures = [plots.ladder(model), plots.jitter(model), plots.loss(model), plots.quality(model)]
    assert len(page.images) == len(figures)
    assert not re.search(r'(src|href)="https?://', report.render(model))
    for src, fig in zip(page.images, figures, strict=True):
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()  # decodes every pixel: a truncated or corrupt PNG raises
        width, height = (fig.get_size_inches() * fig.dpi).round()
        assert image.format == "PNG" and image.size == (width, height)
        grey = image.convert("L")
        drawn = sum(grey.histogram()[:200])  # pixels clearly darker than the white background
        assert drawn > 0.01 * width * height
    assert page.images[0] != page.images[1]


@pytest.mark.parametrize("fallback", [None, OPUS], ids=["capture only", "with the lab's call.json"])
def test_stream_table_and_jitter_plot_agree(fallback: dict[int, Codec] | None) -> None:
    """The plot draws jitter exactly where the table's min/max come from; a stream the table
    cannot give numbers for draws no line, and the legend says the same why."""
    model, page = rendered(fallback)
    rows = page.table("stream", "source")
    lines = {line.get_label(): line for line in plots.jitter(model).axes[0].get_lines()}
    assert len(lines) == len(model.streams) == len(rows)
    for s, row in zip(model.streams, rows, strict=True):
        cell = row["min/mean/max jitter (ms)"]
        line = next(line for label, line in lines.items() if label.split(" (n/a: ")[0] == s.label)
        y = line.get_ydata()
        if cell.startswith("n/a: "):
            assert len(y) == 0 and line.get_label() == f"{s.label} ({cell})"
        else:
            low, _, high = cell.split(" / ")
            assert len(y) > 40 and (f"{min(y):.3f}", f"{max(y):.3f}") == (low, high)
    statuses = [row["min/mean/max jitter (ms)"].startswith("n/a") for row in rows]
    assert statuses == [s.codec in ("opus", "PT96") for s in model.streams] and any(statuses)


def test_ladder_has_every_message_in_time_order() -> None:
    model = load(FIXTURE)
    rows = ladder_rows(model)
    assert len([r for r in rows if r.style != "webrtc"]) == len(model.messages)  # and the STUN/DTLS
    assert [r.t for r in rows] == sorted(r.t for r in rows)
    fig = plots.ladder(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    for m in model.messages:
        assert any(m.label in t for t in texts)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_analyze_json_contract() -> None:
    done = run_cli("analyze", str(FIXTURE), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"parties", "messages", "streams"} <= set(data)
    assert {"t", "src", "dst", "label", "call_id"} <= set(data["messages"][0])
    fields = {
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
        "min_delta_ms",
        "mean_delta_ms",
        "max_delta_ms",
        "min_jitter_ms",
        "mean_jitter_ms",
        "max_jitter_ms",
        "max_skew_ms",
        "r_factor",
        "mos",
    }
    assert all(fields <= set(s) for s in data["streams"]) and isinstance(data["streams"][0]["ssrc"], int)


def test_report_command_writes_the_report_of_the_capture(tmp_path: Path) -> None:
    done = run_cli("report", str(FIXTURE), "-o", str(tmp_path / "out.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "out.html")
    assert (tmp_path / "out.html").read_bytes().decode() == report.render(load(FIXTURE))


def test_bad_files_give_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"x" * 100)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(FIXTURE.read_bytes()[:20000])
    no_sip = tmp_path / "nosip.pcapng"
    subprocess.run(["editcap", "-r", str(FIXTURE), str(no_sip), "900-1000"], check=True, capture_output=True)
    for path, code, words in (
        (junk, 2, "not a pcap"),
        (tmp_path / "missing.pcap", 2, "No such file"),
        (cut, 3, "cut short"),
        (no_sip, 2, "no SIP messages"),
    ):
        done = run_cli("analyze", str(path))
        assert done.returncode == code, (path, done.stderr)
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_dollar_in_sip_text_is_drawn_as_text(tmp_path: Path) -> None:
    """matplotlib reads "$...$" as TeX: SIP text that is bad TeX ended a call's report."""
    invite = (
        "INVITE sip:+79991234567@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:caller@10.0.0.1>;tag=a1\r\nTo: <sip:+79991234567@10.0.0.2>\r\nCall-ID: d@x\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    busy = (
        "SIP/2.0 486 Pay $x^^2$ now\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:caller@10.0.0.1>;tag=a1\r\nTo: <sip:+79991234567@10.0.0.2>;tag=b1\r\nCall-ID: d@x\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    path = write_pcap(
        tmp_path / "dollar.pcap",
        [
            Datagram(1.0, "10.0.0.1", 5060, "10.0.0.2", 5060, invite.encode()),
            Datagram(1.1, "10.0.0.2", 5060, "10.0.0.1", 5060, busy.encode()),
        ],
    )
    figure = plots.ladder(load(path))
    labels = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any("486 Pay $x^^2$ now" in label for label in labels), labels
    assert plots.png(figure)[:8] == b"\x89PNG\r\n\x1a\n"
