"""The Opus relay in real lab calls (lab.gateway.opusrelay): a default call's audio crosses
the gateway from the relay's port pair as a G.711 stream of the gateway's own, never from
pjsua's stream, and both sides hear each other, digits and hold included; a call that asks
the gateway for a jitter buffer keeps the conference bridge."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis.latency import gateway_way
from lab.analysis.recorded_call import analyze
from lab.audio import heard_match, read_wav
from lab.config import PhonePolicy
from lab.jitterspec import JitterBufferSpec
from lab.scenario import CallResult, place_call
from lab.stack import Stack
from lab.webrtc import BrowserAudio

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0)


def way_and_codecs(stack: Stack, result: CallResult) -> tuple[str, set[str]]:
    """How the gateway carried the call's audio (from the capture: which port it sent the SIP
    leg from, with whose SSRC), and the codecs of its SIP-leg streams."""
    assert result.capture is not None
    model = result.model or analyze(result.capture, stack.cfg, with_pesq=False)
    gateway, pstn = stack.cfg.gateway.name, stack.cfg.pstn.name
    sip_leg = {s.codec for s in model.streams if {s.src_party, s.dst_party} == {gateway, pstn}}
    return gateway_way(model.streams, stack.cfg), sip_leg


def both_hear(stack: Stack, result: CallResult) -> None:
    for speaker, listener in (("browser", "phone"), ("phone", "browser")):
        prompt, _ = read_wav(stack.cfg.prompts_dir / f"{speaker}.wav")
        heard, _ = read_wav(Path(result.audio[f"{listener}_received"] or ""))
        assert heard_match(prompt, heard) > 0.85, f"{listener} does not hear the {speaker}"


async def test_a_default_opus_call_is_relayed_as_the_gateways_own_g711_and_both_sides_hear(
    stack: Stack,
) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=3.0, answer=NOW)
    assert result.ok, result
    assert result.codecs["browser"] == "opus"
    # from a relay's port, a stream of the gateway's own (transcoded), not the browser's
    assert way_and_codecs(stack, result) == ("relay", {"PCMU"})
    both_hear(stack, result)


async def test_digits_hold_and_resume_in_a_relayed_opus_call(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=3.0, answer=NOW, dtmf="42", hold=1.0)
    assert result.ok and result.final_status == "FINISH" and result.sip_code == 200, result
    assert result.phone["dtmf_received"] == "42"
    assert {e["method"] for e in result.phone["events"] if e["event"] == "dtmf"} == {"rfc4733"}
    assert [e["event"] for e in result.phone["events"] if e["event"] != "dtmf"] == ["held", "resumed"]
    assert way_and_codecs(stack, result) == ("relay", {"PCMU"})  # the resume kept the relay's port


async def test_a_call_that_asks_the_gateway_for_a_jitter_buffer_keeps_the_bridge(stack: Stack) -> None:
    audio = BrowserAudio("opus", jitter_buffer=JitterBufferSpec.parse("fixed:40"))
    result = await place_call(stack.cfg, NUMBER, duration=2.0, answer=NOW, audio=audio)
    assert result.ok, result
    assert way_and_codecs(stack, result) == ("bridge", {"PCMU"})  # from pjsua's stream
    both_hear(stack, result)
