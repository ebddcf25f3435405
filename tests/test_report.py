from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from lab import plots, report
from lab.analysis.ladder import ladder_rows
from lab.analysis.model import load

FIXTURE = Path(__file__).parent / "fixtures" / "lab_call.pcapng"


def test_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    model = load(FIXTURE)
    html = report.write(model, tmp_path / "r.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 4  # ladder, jitter, loss, quality
    assert not re.search(r'(src|href)="https?://', html)
    for s in model.streams:
        assert f"0x{s.ssrc:08X}" in html
    assert "Proxy-Authorization: [redacted]" in html and 'response="' not in html
    assert "E-model (ITU-T G.107)" in html


def test_ladder_has_every_message_in_time_order() -> None:
    model = load(FIXTURE)
    rows = ladder_rows(model)
    assert len(rows) == len(model.messages)
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


def test_report_command(tmp_path: Path) -> None:
    done = run_cli("report", str(FIXTURE), "-o", str(tmp_path / "out.html"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.html").stat().st_size > 10000


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
