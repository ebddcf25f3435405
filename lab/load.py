"""A load run: full-chain calls to one number, so many at once, at most so many started per
second, summarised in SIPp's terms.

    calllab load +79001234567 --calls 20 --concurrency 4 [--rate 2] [--duration 5] [--codec pcmu] [--json]

Unlike a sweep, a load run may ask for more calls at once than the lab carries: the calls
beyond its capacity get the lab's 503 and are counted as failed by that code, which is what
a load test is for.

The summary, as SIPp's statistics screen and its `-trace_stat` columns say it:
- attempted (calls placed), established (ESTABLISHED seen), successful (established and
  ended normally), failed, each failure counted by its SIP code and reason;
- setup time (SIPp's response time: dial to ESTABLISHED, the phone's answer delay left
  out) as percentiles and in SIPp's `-rtt_freq` buckets: 0-10, 10-20, 20-30, 30-40, 40-50,
  50-100, 100-150, 150-200 and 200+ ms;
- call length (ESTABLISHED to the end), PESQ each direction and the worst stream's loss,
  as median, min and max over the calls that have them;
- the gateway's CPU: its share of one core over the run, idle (measured for a second before
  the first call), and per call: its CPU seconds above idle over the calls' summed length,
  the share of a core one call costs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.batch import Row, a_lab, analysed_call, analysis_pool, run_bounded
from lab.config import LabConfig
from lab.numbers import InvalidNumber, normalize_number

if TYPE_CHECKING:
    from lab.scenario import CallResult

RESPONSE_BUCKETS_MS = (10, 20, 30, 40, 50, 100, 150, 200)
IDLE_WINDOW_S = 1.0
PESQ_DIRECTIONS = {"pesq_to_phone": "Browser -> Mobile phone", "pesq_to_browser": "Mobile phone -> Browser"}
COLUMNS = [
    "index",
    "call_id",
    "ok",
    "status",
    "sip_code",
    "reason",
    "started_s",
    "setup_ms",
    "length_s",
    *PESQ_DIRECTIONS,
    "loss_pct",
]


class LoadError(ValueError):
    """A load run that cannot start; the message names the option and what it accepts."""


@dataclass(frozen=True)
class Load:
    number: str
    calls: int
    concurrency: int
    rate: float | None = None  # calls started per second; None: as soon as a slot is free
    duration: float = 5.0  # s of talk per call
    codec: str = "opus"  # the browser leg's (lab.webrtc.CODECS); pcmu/pcma calls are passed through

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "number", normalize_number(self.number))
        except InvalidNumber as exc:
            raise LoadError(f"NUMBER: {exc}") from None
        if self.calls < 1:
            raise LoadError(f"--calls {self.calls}: 1 or more")
        if self.concurrency < 1:
            raise LoadError(f"--concurrency {self.concurrency}: 1 or more")
        if self.rate is not None and not self.rate > 0:
            raise LoadError(f"--rate {self.rate}: calls per second, more than 0")
        if not 0 < self.duration <= 3600:
            raise LoadError(f"--duration {self.duration}: seconds of talk, more than 0 and at most 3600")


def row_of(index: int, started_s: float, result: CallResult) -> Row:
    """One call's row: how it ended, its setup time and length, what it sounded like."""
    times = {s["status"]: s["t"] for s in result.statuses}
    length = None
    if "ESTABLISHED" in times and result.final_status in times:
        length = round(times[result.final_status] - times["ESTABLISHED"], 3)
    row: Row = {
        "index": index,
        "call_id": result.call_id,
        "ok": result.ok,
        "status": result.final_status,
        "sip_code": result.sip_code,
        "reason": result.reason,
        "started_s": round(started_s, 3),
        "setup_ms": result.setup_ms if "ESTABLISHED" in times else None,
        "length_s": length,
        **dict.fromkeys(PESQ_DIRECTIONS),
        "loss_pct": None,
    }
    if result.model is not None:
        from lab.analysis.recorded_call import own_streams

        for column, direction in PESQ_DIRECTIONS.items():
            row[column] = next((p.mos_lqo for p in result.model.pesq if p.direction == direction), None)
        losses = [s.stats.lost_pct for s in own_streams(result.model, result.call_id)]
        row["loss_pct"] = round(max(losses), 3) if losses else None
    return row


def failed_row(index: int, started_s: float, error: BaseException) -> Row:
    row: Row = dict.fromkeys(COLUMNS)
    row.update(index=index, ok=False, status="ERROR", reason=f"{type(error).__name__}: {error}")
    row["started_s"] = round(started_s, 3)
    return row


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q % of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]


def response_buckets(setup_ms: Sequence[float]) -> dict[str, int]:
    """SIPp's response time repartition: "0-10", "10-20", ... "150-200", "200+" (ms)."""
    edges = (0, *RESPONSE_BUCKETS_MS)
    buckets = {f"{lo}-{hi}": 0 for lo, hi in zip(edges, edges[1:], strict=False)}
    buckets[f"{edges[-1]}+"] = 0
    for ms in setup_ms:
        hi = next((h for h in RESPONSE_BUCKETS_MS if ms < h), None)
        buckets[f"{edges[RESPONSE_BUCKETS_MS.index(hi)]}-{hi}" if hi else f"{edges[-1]}+"] += 1
    return buckets


def summarize(
    rows: Sequence[Row], load: Load, elapsed_s: float, gateway_cpu_s: float | None, idle_cpu: float = 0.0
) -> dict[str, Any]:
    """The run in SIPp's terms (module docstring); `rows` may be fewer than load.calls when
    the run was interrupted. `idle_cpu`: the gateway's share of a core with no call."""
    setups = [r["setup_ms"] for r in rows if r["setup_ms"] is not None]
    lengths = [r["length_s"] for r in rows if r["length_s"] is not None]
    failed = [r for r in rows if not r["ok"]]
    why = Counter(f"{r['sip_code'] or '-'} {r['reason']}".strip() for r in failed)
    talk = sum(lengths)
    summary: dict[str, Any] = {
        "asked": dataclasses.asdict(load),
        "attempted": len(rows),
        "not_placed": load.calls - len(rows),
        "established": len(setups),
        "successful": len(rows) - len(failed),
        "failed": len(failed),
        "failed_by": dict(why.most_common()),
        "elapsed_s": round(elapsed_s, 3),
        "calls_per_s": round(len(rows) / elapsed_s, 3) if elapsed_s > 0 else None,
        "setup_ms": {f"p{q}": percentile(setups, q) for q in (50, 90, 99)} | {"max": max(setups)}
        if setups
        else None,
        "response_time_ms": response_buckets(setups),
        "call_length_s": _spread(lengths),
        **{column: _spread([r[column] for r in rows if r[column] is not None]) for column in PESQ_DIRECTIONS},
        "loss_pct": _spread([r["loss_pct"] for r in rows if r["loss_pct"] is not None]),
        "gateway_cpu_pct": None,
        "gateway_cpu_idle_pct": None,
        "gateway_cpu_per_call_pct": None,
    }
    if gateway_cpu_s is not None and elapsed_s > 0:
        summary["gateway_cpu_pct"] = round(100 * gateway_cpu_s / elapsed_s, 1)
        calls_cpu = max(0.0, gateway_cpu_s - idle_cpu * elapsed_s)
        summary["gateway_cpu_idle_pct"] = round(100 * idle_cpu, 1)
        summary["gateway_cpu_per_call_pct"] = round(100 * calls_cpu / talk, 1) if talk else None
    return summary


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary as text, SIPp's screen's order."""
    asked = summary["asked"]
    rate = f"{asked['rate']:g}/s" if asked["rate"] else "as slots free"
    lines = [
        f"load: {asked['calls']} calls to {asked['number']}, {asked['concurrency']} at once, "
        f"started {rate}, {asked['duration']:g} s of talk each",
        f"  attempted {summary['attempted']}, established {summary['established']}, "
        f"successful {summary['successful']}, failed {summary['failed']}"
        + (f", not placed {summary['not_placed']} (interrupted)" if summary["not_placed"] else ""),
    ]
    lines += [f"    {count:4d} x {why}" for why, count in summary["failed_by"].items()]
    lines.append(f"  {summary['elapsed_s']:.1f} s, {summary['calls_per_s'] or 0:.2f} calls/s")
    if summary["setup_ms"]:
        s = summary["setup_ms"]
        percentiles = ", ".join(f"{k} {v:.1f}" for k, v in s.items())
        lines.append(f"  setup ms: {percentiles}")
        buckets = summary["response_time_ms"]
        lines.append("  setup time repartition (ms): " + ", ".join(f"{k}: {v}" for k, v in buckets.items()))
    for key, title in (
        ("call_length_s", "call length s"),
        ("pesq_to_phone", "PESQ browser -> phone"),
        ("pesq_to_browser", "PESQ phone -> browser"),
        ("loss_pct", "worst stream loss %"),
    ):
        if summary[key]:
            v = summary[key]
            lines.append(f"  {title}: median {v['median']:g}, min {v['min']:g}, max {v['max']:g}")
    if summary["gateway_cpu_pct"] is not None:
        per_call = summary["gateway_cpu_per_call_pct"]
        lines.append(
            f"  gateway CPU: {summary['gateway_cpu_pct']:.1f} % of a core over the run, "
            f"{summary['gateway_cpu_idle_pct']:.1f} % idle"
            + (f", {per_call:.1f} % per call above idle" if per_call is not None else "")
        )
    return lines


def cpu_seconds(*pids: int) -> float | None:
    """User + system CPU seconds of processes so far, summed; None when one is gone."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class LoadRun:
    """A run's calls as they finish, and what the gateway's CPU did meanwhile: an
    interrupted run (Ctrl-C cancels it) keeps every finished call's row."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.rows: list[Row] = []
        self._started: float | None = None
        self._gateway_pids: list[int] = []
        self._cpu_at_start: float | None = None
        self._idle_cpu = 0.0  # the gateway's share of a core with no call
        self._ended: tuple[float, float | None] | None = None  # (elapsed, gateway CPU s) at stop()

    async def start(self, gateway_pids: list[int]) -> None:
        """Measure the gateway (its front and workers) idle for IDLE_WINDOW_S, then start the clock."""
        self._gateway_pids = gateway_pids
        before = cpu_seconds(*gateway_pids) if gateway_pids else None
        await asyncio.sleep(IDLE_WINDOW_S if before is not None else 0)
        self._cpu_at_start = cpu_seconds(*gateway_pids) if gateway_pids else None
        if before is not None and self._cpu_at_start is not None:
            self._idle_cpu = (self._cpu_at_start - before) / IDLE_WINDOW_S
        self._started = time.monotonic()

    @property
    def elapsed(self) -> float:
        if self._ended is not None:
            return self._ended[0]
        return time.monotonic() - self._started if self._started is not None else 0.0

    def stop(self) -> None:
        """The calls are over (or interrupted): the run's time and the gateway's CPU end here,
        before a lab started for the run stops and takes its gateway with it."""
        if self._ended is not None:
            return
        now = cpu_seconds(*self._gateway_pids) if self._gateway_pids else None
        used = now - self._cpu_at_start if now is not None and self._cpu_at_start is not None else None
        self._ended = (self.elapsed, used)

    @property
    def ordered(self) -> list[Row]:
        return sorted(self.rows, key=lambda r: int(r["index"]))

    def summary(self) -> dict[str, Any]:
        self.stop()
        assert self._ended is not None
        elapsed, used = self._ended
        return summarize(self.ordered, self.load, elapsed, used, self._idle_cpu)


async def run(load_run: LoadRun, cfg: LabConfig, on_row: Callable[[Row], None] | None = None) -> None:
    """The load on the lab of `cfg`; each call analysed in a worker process."""
    from lab.stack import read_state, role_pids
    from lab.webrtc import BrowserAudio

    load = load_run.load
    state = read_state(cfg) or {"parties": {}}
    with analysis_pool() as analysis:
        await load_run.start(role_pids(state, cfg.gateway.name))

        async def call(index: int) -> None:
            started = load_run.elapsed
            try:
                audio = BrowserAudio(load.codec)
                result = await analysed_call(cfg, analysis, load.number, load.duration, audio=audio)
                row = row_of(index, started, result)
            except Exception as exc:  # one failing call must not end the run
                row = failed_row(index, started, exc)
            load_run.rows.append(row)
            if on_row is not None:
                on_row(row)

        jobs = [functools.partial(call, i) for i in range(1, load.calls + 1)]
        try:
            await run_bounded(jobs, load.concurrency, 1 / load.rate if load.rate else 0.0)
        finally:
            load_run.stop()


async def run_in_lab(load_run: LoadRun, on_row: Callable[[Row], None] | None = None) -> None:
    """The load on the running lab, or on one started for it and stopped after."""
    async with a_lab() as cfg:
        await run(load_run, cfg, on_row)
