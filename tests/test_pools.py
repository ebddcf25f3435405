"""Calls at once past pjsua2's 4 a process: a lab carrying 5 (two gateway workers behind the
front, 5 PSTN channels, two phone processes) takes 5 calls at once, spread over both
workers and both phone processes, and answers a 6th with the SIP server's 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.audio import heard_match, read_wav
from lab.config import LabConfig, PhonePolicy
from lab.scenario import CallResult, place_call
from lab.stack import Stack, gateway_ping

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)
CAPACITY = 5


@pytest.fixture(scope="module")
async def lab(lab_config: LabConfig) -> AsyncIterator[Stack]:
    stack = Stack(lab_config.carrying(CAPACITY))
    await stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def calls_at_once(cfg: LabConfig, n: int) -> tuple[list[CallResult], list[int]]:
    """n calls placed at once, and each gateway worker's calls while they talk."""
    placed = [
        asyncio.ensure_future(
            place_call(cfg, NUMBER, duration=3.0, answer=NOW, codec="pcmu", capture=False, report=False)
        )
        for _ in range(n)
    ]
    await asyncio.sleep(2.0)
    pongs = [await gateway_ping(cfg.ws_url, 2.0, cfg.worker_socket(w)) for w in cfg.gateway_pool]
    return await asyncio.gather(*placed), [p.active_calls for p in pongs]


async def test_a_lab_carrying_5_takes_5_calls_at_once_over_both_workers_and_phones(lab: Stack) -> None:
    cfg = lab.cfg
    assert (len(cfg.gateway_pool), cfg.pstn_channel_count, len(cfg.phone_pool)) == (2, 5, 2)
    results, per_worker = await calls_at_once(cfg, CAPACITY)
    assert [(r.final_status, r.sip_code) for r in results] == [("FINISH", 200)] * CAPACITY, results
    assert sum(per_worker) == CAPACITY and min(per_worker) >= 1, per_worker  # the front spread them
    # PSTN channel i's call went to phone process i mod 2, and each call's report was found.
    answered = sorted(r.phone["answered_by"] for r in results)
    assert answered == ["Mobile phone 127.0.0.5"] * 3 + ["Mobile phone w2 127.0.0.5"] * 2
    prompt, _ = read_wav(cfg.prompts_dir / "browser.wav")
    for r in results:
        heard, _ = read_wav(Path(r.audio["phone_received"] or ""))
        assert heard_match(prompt, heard) > 0.85, f"call {r.call_id}: the phone does not hear the browser"


async def test_a_call_past_the_capacity_gets_503_saying_the_channels_are_busy(lab: Stack) -> None:
    results, _ = await calls_at_once(lab.cfg, CAPACITY + 1)
    failed = [r for r in results if not r.ok]
    assert len(failed) == 1, [(r.final_status, r.sip_code, r.reason) for r in results]
    assert (failed[0].sip_code, failed[0].reason) == (503, "PSTN gateway 127.0.0.4: all channels busy")
