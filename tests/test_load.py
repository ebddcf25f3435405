"""calllab load: the summary in SIPp's terms from rows, bad input, and a real run past the
lab's capacity (the calls beyond it get 503, the others are heard)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from lab.cli import main
from lab.config import LabConfig
from lab.load import Load, LoadError, LoadRun, percentile, response_buckets, run, summarize, summary_lines
from lab.stack import Stack

NUMBER = "+79001234567"


def row(
    index: int, ok: bool = True, setup: float | None = 20.0, code: int | None = None, reason: str = ""
) -> dict[str, object]:
    return {
        "index": index,
        "call_id": f"c{index}",
        "ok": ok,
        "status": "FINISH" if ok else "FAILED",
        "sip_code": code,
        "reason": reason,
        "started_s": 0.0,
        "setup_ms": setup,
        "length_s": 5.0 if setup is not None else None,
        "pesq_to_phone": 2.5 if ok else None,
        "pesq_to_browser": 2.7 if ok else None,
        "loss_pct": 0.0 if ok else None,
    }


def test_percentiles_are_nearest_rank_and_buckets_are_sipps() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50.0, 90.0, 99.0)
    assert percentile([7.0], 99) == 7.0
    buckets = response_buckets([0.5, 9.99, 10.0, 45.0, 99.0, 150.0, 199.9, 200.0, 5000.0])
    edges = ["0-10", "10-20", "20-30", "30-40", "40-50", "50-100", "100-150", "150-200", "200+"]
    assert list(buckets) == edges
    assert list(buckets.values()) == [2, 1, 0, 0, 1, 1, 0, 2, 2]


def test_the_summary_counts_failures_by_code_and_reason_and_keeps_an_interrupted_runs_rows() -> None:
    load = Load(NUMBER, calls=6, concurrency=5)
    rows = [
        row(1, setup=12.0),
        row(2, setup=25.0),
        row(3, setup=31.0),
        row(4, ok=False, setup=None, code=503, reason="gateway busy"),
        row(5, ok=False, setup=None, code=503, reason="gateway busy"),
    ]
    summary = summarize(rows, load, elapsed_s=10.0, gateway_cpu_s=0.9, idle_cpu=0.03)
    counts = [summary[k] for k in ("attempted", "established", "successful", "failed")]
    assert counts == [5, 3, 3, 2]
    assert summary["not_placed"] == 1 and summary["failed_by"] == {"503 gateway busy": 2}
    assert summary["setup_ms"] == {"p50": 25.0, "p90": 31.0, "p99": 31.0, "max": 31.0}
    assert summary["response_time_ms"]["10-20"] == 1 and summary["response_time_ms"]["20-30"] == 1
    assert summary["pesq_to_phone"] == {"median": 2.5, "min": 2.5, "max": 2.5}
    # 0.9 s in 10 s, 0.3 s of it idle: 0.6 s for 15 s of calls
    assert summary["gateway_cpu_pct"] == 9.0 and summary["gateway_cpu_idle_pct"] == 3.0
    assert summary["gateway_cpu_per_call_pct"] == 4.0
    text = "\n".join(summary_lines(summary))
    assert "attempted 5, established 3, successful 3, failed 2, not placed 1 (interrupted)" in text
    assert "   2 x 503 gateway busy" in text and "setup ms: p50 25.0, p90 31.0, p99 31.0, max 31.0" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["12a"], "NUMBER:"),
        ([NUMBER, "--calls", "0"], "--calls: must be 1 or more"),
        ([NUMBER, "--concurrency", "-1"], "--concurrency: must be 1 or more"),
        ([NUMBER, "--rate", "0"], "--rate: must be more than 0"),
        ([NUMBER, "--duration", "7200"], "--duration 7200.0: seconds of talk"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_lab(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lab(*_: object) -> None:
        raise AssertionError("the lab was contacted")

    monkeypatch.setattr("lab.load.run_in_lab", no_lab)
    try:
        code = main(["load", *args])
    except SystemExit as exited:  # argparse's own refusals
        code = exited.code
    assert code == 2
    assert message in capsys.readouterr().err
    with pytest.raises(LoadError, match="NUMBER"):
        Load("not a number", 1, 1)


async def test_the_gateways_cpu_is_read_when_the_calls_end_not_after_its_lab_stopped() -> None:
    gateway = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # a busy stand-in
    try:
        load_run = LoadRun(Load(NUMBER, calls=1, concurrency=1))
        await load_run.start([gateway.pid])
        await asyncio.sleep(0.5)
        load_run.stop()  # what run() does once the calls are over
    finally:
        gateway.kill()
        gateway.wait()
    summary = load_run.summary()  # a lab started for the run has stopped by now
    assert summary["gateway_cpu_pct"] is not None and summary["gateway_cpu_pct"] > 30, summary


@pytest.fixture(scope="module")
async def one_worker(lab_config: LabConfig) -> AsyncIterator[Stack]:
    """A lab whose gateway has one worker (4 calls) before 8 PSTN channels and 2 phones."""
    stack = Stack(dataclasses.replace(lab_config, gateway_workers=1, pstn_channel_count=8, phone_workers=2))
    await stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.slow
async def test_a_run_past_the_labs_capacity_gets_503_for_the_extra_calls_and_hears_the_others(
    one_worker: Stack,
) -> None:
    load = Load(NUMBER, calls=6, concurrency=6, duration=3.0)
    load_run = LoadRun(load)
    await run(load_run, one_worker.cfg)
    summary = load_run.summary()
    assert summary["attempted"] == 6 and summary["not_placed"] == 0
    assert summary["successful"] >= 4 and summary["successful"] + summary["failed"] == 6
    busy = (
        "503 gateway busy: Gateway w1, which has this client, carries 4 calls at once "
        "(pjsua2's limit per process); the lab carries 4"
    )
    assert list(summary["failed_by"]) == [busy] and summary["failed_by"][busy] == summary["failed"]
    assert sum(summary["response_time_ms"].values()) == summary["established"]
    for r in load_run.ordered:
        if r["ok"]:
            assert r["setup_ms"] > 0 and 2.5 < r["length_s"] < 5.0, r
            # Nothing lost on the wire; what 4 calls at once on 2 cores sound like is a
            # measurement (issue 11), not a pass mark: PESQ 1.1-2.4 here, with other work.
            assert r["loss_pct"] == 0, r
            assert r["pesq_to_phone"] is not None and r["pesq_to_browser"] is not None, r
    assert summary["gateway_cpu_per_call_pct"] is not None and summary["gateway_cpu_per_call_pct"] > 0
