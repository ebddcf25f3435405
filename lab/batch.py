"""Many calls through the lab: at most so many at once, a progress bar, and each call
analysed in a worker process so PESQ's seconds of CPU never stall the calls' media.
`calllab sweep` (lab.sweep) and `calllab load` (lab.load) are built on it."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lab.config import LabConfig, PhonePolicy

if TYPE_CHECKING:
    from lab.analysis.model import CallModel
    from lab.scenario import CallResult

Row = dict[str, Any]

#: The phone answers almost at once: a batch measures media, not ringing.
ANSWER = PhonePolicy("answer", 0.3)


async def run_bounded(
    jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int, interval: float = 0.0
) -> None:
    """Every job, at most `concurrency` at once, one started at most every `interval`
    seconds (0: as soon as a slot is free). Cancelling ends the jobs in flight."""
    slots = asyncio.Semaphore(concurrency)
    pace = asyncio.Lock()
    next_start = time.monotonic()

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        nonlocal next_start
        async with slots:
            async with pace:
                await asyncio.sleep(max(0.0, next_start - time.monotonic()))
                next_start = time.monotonic() + interval
            await job()

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def a_lab() -> AsyncIterator[LabConfig]:
    """The running lab's config (`calllab up`'s), or a lab started for the batch and
    stopped after it, as `calllab call` does."""
    from lab.stack import Stack, running_config

    cfg = running_config()
    if cfg is not None:
        yield cfg
        return
    async with Stack() as stack:
        yield stack.cfg


def analysed(cfg: LabConfig, capture: str, log: Mapping[str, Any]) -> tuple[CallModel, str]:
    """A call's model and HTML report, made in a worker process."""
    from lab.analysis.recorded_call import analyze
    from lab.report import write

    model = analyze(capture, cfg, log=log)
    path = cfg.captures_dir / f"{Path(capture).stem}.html"
    return model, str(write(model, path, f"Call {Path(capture).stem}"))


@contextlib.contextmanager
def analysis_pool() -> Iterator[ProcessPoolExecutor]:
    """The worker process that analyses a batch's calls: spawned, not forked (the batch's
    process runs aiortc's threads), and deaf to Ctrl-C, which is the batch's to handle. An
    interrupted batch waits for the analysis under way, not for the ones still queued."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def analysed_call(
    cfg: LabConfig, analysis: Executor, number: str, duration: float, **call_kwargs: Any
) -> CallResult:
    """One call placed through the lab, its capture analysed in `analysis`."""
    from lab.scenario import place_call

    result = await place_call(cfg, number, duration=duration, answer=ANSWER, report=False, **call_kwargs)
    if result.capture:
        loop = asyncio.get_running_loop()
        result.model, result.report = await loop.run_in_executor(
            analysis, analysed, cfg, result.capture, result.log()
        )
    return result


# --- progress -----------------------------------------------------------------------------


def progress_line(done: int, total: int, failed: int, elapsed: float, width: int = 24) -> str:
    """`[##########--------------] 10/24 calls, 1 failed, 1m05s, ETA 1m31s`"""
    filled = round(width * done / total) if total else width
    eta = f", ETA {_duration(elapsed / done * (total - done))}" if done and done < total else ""
    fails = f", {failed} failed" if failed else ""
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} calls{fails}, {_duration(elapsed)}{eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class Progress:
    """The progress bar on a stream: redrawn in place on a terminal, a line per call otherwise.
    A row is a call's: its `index`, `ok`, `status` and `reason`."""

    def __init__(self, total: int, stream: IO[str] = sys.stderr) -> None:
        self.total, self.stream = total, stream
        self.done = self.failed = 0
        self.started = time.monotonic()
        self.tty = stream.isatty()

    def update(self, row: Row) -> None:
        self.done += 1
        self.failed += not row["ok"]
        line = progress_line(self.done, self.total, self.failed, time.monotonic() - self.started)
        if not row["ok"]:
            line += f"  #{row['index']} failed: {row['status']} {row['reason']}"
        end = "\n" if not self.tty or self.done == self.total or not row["ok"] else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
