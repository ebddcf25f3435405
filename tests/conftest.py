from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.audio import ensure_prompts
from lab.config import LabConfig
from lab.stack import Stack

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


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
