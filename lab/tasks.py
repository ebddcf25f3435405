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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class Tasks:
    def __init__(
        self,
        owner: str,
        log: logging.Logger,
        report: Callable[[str, Exception], Awaitable[None]] | None = None,
    ) -> None:
        self.owner = owner
        self.log = log
        self.report = report
        self.running: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, object], what: str) -> asyncio.Task[None]:
        """Run `work` (described by `what`, for the log) in the background."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                self.log.exception("%s: %s failed", self.owner, what)
                if self.report is not None:
                    try:
                        await self.report(what, exc)
                    except Exception:
                        self.log.exception("%s: reporting the failure of %s failed", self.owner, what)

        task = asyncio.ensure_future(guarded())
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    def cancel(self) -> None:
        for task in list(self.running):
            task.cancel()
