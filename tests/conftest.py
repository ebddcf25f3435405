from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lab.audio import ensure_prompts
from lab.client import Call, CallStatus
from lab.config import LabConfig
from lab.process import freeze_startup_heap
from lab.sip import videophone
from lab.stack import Stack

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_sessionstart(session: pytest.Session) -> None:
    freeze_startup_heap()  # the tests' process is their calls' client (lab.process says why)


@pytest.fixture(autouse=True)
def _keep_sigpipe() -> Iterator[None]:
    """lab.cli.main() lets a closed pipe end its process quietly (`calllab analyze x | head`):
    called in pytest's process, the next write to a closed socket would kill the whole run."""
    handler = signal.getsignal(signal.SIGPIPE)
    yield
    signal.signal(signal.SIGPIPE, handler)


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home of its own for the tests: a user's captures and state stay untouched."""
    home = tmp_path_factory.mktemp("calllab-home")
    ensure_prompts(home / ".calllab" / "prompts")
    return home


@pytest.fixture(scope="session")
def lab_config(lab_home: Path) -> LabConfig:
    # Numbers the phone answers by the config (not by a header per call): test_sip_functions.
    policies = {"89990000486": "busy", "+79990000603": "reject"}
    return dataclasses.replace(LabConfig(), home=lab_home, number_policies=policies)


@pytest.fixture(scope="module")
async def stack(lab_config: LabConfig) -> AsyncIterator[Stack]:
    """The real lab: Kamailio, PSTN gateway, phone and gateway processes, per test module."""
    lab = Stack(lab_config)
    await lab.start()
    try:
        yield lab
    finally:
        lab.stop()


class PhoneScreen:
    """What the video phone decodes from a call, looked at 2 s after it is established (past
    the first keyframe the relay asked for): pass on_status to place_call, then await size()."""

    def __init__(self, cfg: LabConfig, path: Path) -> None:
        self.cfg = cfg
        self.path = path
        self._look: asyncio.Task[tuple[int, int]] | None = None

    def on_status(self, call: Call) -> None:
        if call.status == CallStatus.ESTABLISHED and self._look is None:
            self._look = asyncio.ensure_future(self._snapshot())

    async def _snapshot(self) -> tuple[int, int]:
        await asyncio.sleep(2.0)
        return await videophone.snapshot(self.cfg, self.path)

    async def size(self) -> tuple[int, int]:
        """The picture's (width, height)."""
        assert self._look is not None, "the call was never established"
        return await self._look


@pytest.fixture
def phone_screen(stack: Stack, tmp_path: Path) -> PhoneScreen:
    return PhoneScreen(stack.cfg, tmp_path / "at-phone.png")
