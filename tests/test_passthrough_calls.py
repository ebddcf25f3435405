"""G.711 passthrough in real lab calls: the browser's PCMU or PCMA crosses the gateway
untouched, from the relay's port pair and never from pjsua's stream, both sides hear each
other, and digits, hold and resume still work (lab.gateway.passthrough)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis.latency import passed_through
from lab.analysis.recorded_call import analyze
from lab.audio import heard_match, read_wav
from lab.config import PhonePolicy
from lab.scenario import CallResult, place_call
from lab.stack import Stack
from lab.webrtc import BrowserAudio

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0)


def sip_leg_ports(stack: Stack, result: CallResult) -> tuple[set[int], set[str]]:
    """The gateway's own ports on the SIP leg, from the capture's streams both ways, and
    the codecs they carried."""
    assert result.capture is not None
    model = result.model or analyze(result.capture, stack.cfg, with_pesq=False)
    gateway, pstn = stack.cfg.gateway.name, stack.cfg.pstn.name
    out = [s for s in model.streams if (s.src_party, s.dst_party) == (gateway, pstn)]
    back = [s for s in model.streams if (s.src_party, s.dst_party) == (pstn, gateway)]
    assert len(out) == 1 and len(back) == 1, [s.label for s in model.streams]
    assert passed_through(model.streams, stack.cfg)  # the browser's SSRC on the SIP leg too
    return {out[0].src_port, back[0].dst_port}, {out[0].codec, back[0].codec}


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_g711_crosses_the_gateway_untouched_and_both_sides_hear(stack: Stack, codec: str) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=3.0, answer=NOW, audio=BrowserAudio(codec.lower()))
    assert result.ok, result
    ports, codecs = sip_leg_ports(stack, result)
    assert codecs == {codec}
    [port] = ports  # one port pair both ways: the relay's, not pjsua's (the range's lower half)
    assert port in stack.cfg.gateway.relay_ports, port
    for speaker, listener in (("browser", "phone"), ("phone", "browser")):
        prompt, _ = read_wav(stack.cfg.prompts_dir / f"{speaker}.wav")
        heard, _ = read_wav(Path(result.audio[f"{listener}_received"] or ""))
        assert heard_match(prompt, heard) > 0.85, f"{listener} does not hear the {speaker}"


async def test_digits_hold_and_resume_in_a_passed_through_call(stack: Stack) -> None:
    """Digits go as RFC 4733 events in the browser's stream; hold's re-INVITEs keep the relay's
    port; after the resume the media watchdog (the relay's count) sees the far end again."""
    result = await place_call(
        stack.cfg, NUMBER, duration=3.0, answer=NOW, audio=BrowserAudio("pcmu"), dtmf="19#", hold=1.0
    )
    assert result.ok and result.final_status == "FINISH" and result.sip_code == 200, result
    assert result.phone["dtmf_received"] == "19#"
    assert {e["method"] for e in result.phone["events"] if e["event"] == "dtmf"} == {"rfc4733"}
    assert [e["event"] for e in result.phone["events"] if e["event"] != "dtmf"] == ["held", "resumed"]
    assert result.capture is not None
    model = analyze(result.capture, stack.cfg, with_pesq=False)
    gateway_sdps = [m.sdp[0] for m in model.messages if m.src_party == stack.cfg.gateway.name and m.sdp]
    assert [s.direction for s in gateway_sdps] == ["sendrecv", "sendrecv", "sendonly", "sendrecv"]
    assert {s.port for s in gateway_sdps} == {next(iter(sip_leg_ports(stack, result)[0]))}
