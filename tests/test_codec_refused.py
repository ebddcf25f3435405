"""A PSTN gateway that takes fewer codecs than the gateway may offer (like a GSM gateway
that takes only G.711 and GSM): a call offering another gets 488 naming both lists."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from lab.config import LabConfig, PhonePolicy
from lab.scenario import place_call
from lab.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def stack(lab_config: LabConfig) -> AsyncIterator[Stack]:
    lab = Stack(dataclasses.replace(lab_config, pstn_codecs=("GSM", "PCMU", "PCMA")))
    await lab.start()
    try:
        yield lab
    finally:
        lab.stop()


async def test_a_codec_the_pstn_gateway_does_not_take_gets_488_with_both_lists(stack: Stack) -> None:
    result = await place_call(stack.cfg, "+79991234567", sip_codec="g722")
    assert (result.final_status, result.sip_code) == ("FAILED", 488), result
    assert result.reason == "offered G722; the PSTN gateway accepts GSM, PCMU, PCMA"
    assert "ESTABLISHED" not in [s["status"] for s in result.statuses]


async def test_a_codec_it_takes_still_goes_through(stack: Stack) -> None:
    result = await place_call(
        stack.cfg, "+79991234567", duration=1.0, answer=PhonePolicy("answer", 0), sip_codec="gsm"
    )
    assert result.ok, result
    assert result.codecs["sip"] == "GSM"
