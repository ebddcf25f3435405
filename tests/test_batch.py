"""The batch runner under calllab sweep and calllab load, without a lab."""

from __future__ import annotations

import asyncio
import time

from lab.batch import progress_line, run_bounded


def test_the_progress_line_counts_fails_and_estimates_what_is_left() -> None:
    assert progress_line(6, 24, 1, 90.0, width=8) == "[##------] 6/24 calls, 1 failed, 1m30s, ETA 4m30s"
    assert progress_line(24, 24, 0, 300.0, width=8) == "[########] 24/24 calls, 5m00s"


async def test_at_most_concurrency_jobs_run_at_once() -> None:
    running, most, done = 0, 0, []

    async def job(n: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        done.append(n)

    await run_bounded([lambda n=n: job(n) for n in range(9)], concurrency=3)
    assert most == 3 and sorted(done) == list(range(9))


async def test_jobs_start_no_faster_than_the_interval() -> None:
    starts: list[float] = []

    async def job() -> None:
        starts.append(time.monotonic())

    await run_bounded([job] * 4, concurrency=4, interval=0.05)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4 and min(gaps) >= 0.045, gaps


async def test_cancelling_ends_the_jobs_in_flight() -> None:
    ended: list[str] = []

    async def job() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    task = asyncio.ensure_future(run_bounded([job] * 3, concurrency=2))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert ended == ["cancelled", "cancelled"]  # the third never started
