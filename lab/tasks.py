"""Background tasks started from callbacks, kept referenced and never failing silently.

pjsua2 and websocket callbacks are plain functions, so work that awaits is started as a
task. asyncio keeps only a weak reference to a task and reports its exception, if at all,
as "Task exception was never retrieved" when it is collected. Tasks holds each task until
it is done and reports a failure at once: logged with the owner's name, and handed to the
owner's `report` (the gateway tells its client with an `error` message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Tasks:
    def __init__(
        self,
        owner: str,
        log: logging.Logger,
        report: Callable[[str, Exception], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.owner = owner
        self.log = log
        self.report = report
        self.running: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, T], what: str, *, report: bool = True) -> asyncio.Task[T]:
        """Run `work` (described by `what`, for the log) in the background."""
        task = asyncio.ensure_future(work)
        self.running.add(task)
        task.add_done_callback(lambda done: self._finished(done, what, report))
        return task

    def _finished(self, task: asyncio.Task[Any], what: str, report: bool) -> None:
        self.running.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if not isinstance(exc, Exception):
            return
        self.log.error("%s: %s failed", self.owner, what, exc_info=exc)
        if self.report is not None and report:  # a failed report is only logged
            self.start(self.report(what, exc), f"reporting that {what} failed", report=False)

    def cancel(self) -> None:
        for task in list(self.running):
            task.cancel()
