"""Background tasks: kept until done, failures logged with the owner's name and reported."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lab.tasks import Tasks


async def test_a_failing_task_is_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    reported: list[tuple[str, str]] = []

    async def report(what: str, exc: Exception) -> None:
        reported.append((what, str(exc)))

    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    tasks = Tasks("client VKP009", logging.getLogger("test"), report)
    task = tasks.start(fail(), "sending status")
    assert tasks.running == {task}
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.01)  # the report runs as a task of its own
    assert reported == [("sending status", "boom")]
    assert tasks.running == set()
    assert [r.getMessage() for r in caplog.records] == ["client VKP009: sending status failed"]


async def test_cancel_stops_what_runs() -> None:
    tasks = Tasks("phone", logging.getLogger("test"))
    task = tasks.start(asyncio.sleep(10), "waiting")
    await asyncio.sleep(0)
    tasks.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and tasks.running == set()
