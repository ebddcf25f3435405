"""A tiny real sweep through the lab: loss on the mobile leg costs PESQ, and each row's
measured loss is what the network says it dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.batch import analysis_pool
from lab.stack import Stack
from lab.sweep import Results, Sweep, lab_call, read_csv, run, write_report

pytestmark = pytest.mark.slow


async def test_loss_on_the_mobile_leg_lowers_pesq_and_the_rows_measure_what_was_dropped(
    stack: Stack, tmp_path: Path
) -> None:
    # Opus on the browser leg: the gateway re-times what it sends the SIP side, so the
    # mobile leg's loss is what moves the PESQ (a G.711 call passes the browser's timing on).
    sweep = Sweep(
        "+79001234567", "mobile", "both", (("codec", ("opus",)),), (("loss", ("0", "10")),), duration=4
    )
    points = sweep.points()
    results = Results(tmp_path / "sweep.csv")
    with analysis_pool() as analysis:
        await run(points, lab_call(stack.cfg, sweep, analysis), results, stack.cfg.calls_at_once)
    results.close()
    clean, lossy = results.ordered
    assert clean["ok"] and lossy["ok"], [(r["status"], r["reason"]) for r in results.ordered]
    for side in ("to_phone", "to_browser"):
        assert lossy[f"{side}_pesq"] < clean[f"{side}_pesq"], (side, clean, lossy)
        assert clean[f"{side}_loss_pct"] == 0.0 and clean[f"{side}_dropped"] is None  # media went direct
        dropped, sent = lossy[f"{side}_dropped"], lossy[f"{side}_sent"]
        assert lossy[f"{side}_lost"] == dropped and 0.05 * sent < dropped < 0.15 * sent, (side, lossy)
        assert lossy[f"{side}_loss_pct"] == pytest.approx(100 * dropped / sent, abs=1.0)
        assert lossy[f"{side}_codec"] == "GSM" and lossy[f"{side}_ceiling"] is not None
    assert read_csv(tmp_path / "sweep.csv") == results.rows
    report = write_report(sweep, results.rows, tmp_path / "sweep.html", len(points)).read_text()
    assert report.count("<img") == 2 and lossy["call_id"] in report
