"""The browser leg's audio settings in real lab calls: G.722 negotiated and carried, Opus
at the asked bitrate both ways, the jitter buffer the call asked for."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from lab.analysis.wireshark import fields
from lab.audio import heard_match, read_wav
from lab.config import PhonePolicy
from lab.jitterspec import JitterBufferSpec
from lab.scenario import CallResult, place_call
from lab.stack import Stack
from lab.webrtc import BrowserAudio

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0)


def assert_both_sides_hear(stack: Stack, result: CallResult) -> None:
    for speaker, listener in (("browser", "phone"), ("phone", "browser")):
        prompt, _ = read_wav(stack.cfg.prompts_dir / f"{speaker}.wav")
        heard, _ = read_wav(Path(result.audio[f"{listener}_received"] or ""))
        assert heard_match(prompt, heard) > 0.85, f"{listener} does not hear the {speaker}"


async def test_g722_on_the_browser_leg(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=3.0, answer=NOW, audio=BrowserAudio("g722"))
    assert result.ok, result
    assert result.webrtc_codec is not None and result.webrtc_codec["name"] == "G722"
    assert result.model is not None
    browser_leg = {s.codec for s in result.model.streams if "Browser" in (s.src_party, s.dst_party)}
    assert browser_leg == {"G722"}
    assert_both_sides_hear(stack, result)


def median_udp_bytes(capture: str, src: str, dst: str) -> float:
    rows = fields(capture, f"udp && ip.src=={src} && ip.dst=={dst}", "udp.length")
    return statistics.median(int(r[0]) for r in rows)


async def test_opus_bitrate_and_fec_asked_are_sent_both_ways(stack: Stack) -> None:
    """16 kbit/s asked in the client's SDP and mirrored by the gateway: each side's packets
    are a fifth of aiortc's 96 kbit/s ones (240 bytes of Opus a packet)."""
    jitter = JitterBufferSpec.parse("adaptive:20-100")
    audio = BrowserAudio(opus_bitrate=16000, opus_fec=True, jitter_buffer=jitter)
    result = await place_call(stack.cfg, NUMBER, duration=3.0, answer=NOW, audio=audio)
    assert result.ok and result.capture, result
    assert result.browser_audio is not None
    assert result.browser_audio["jitter_buffer"] == "adaptive:20-100"
    assert [b["lost"] for b in result.browser_audio["client_jitter_buffer"]] == [0]
    browser, gateway = stack.cfg.browser.host, stack.cfg.gateway.host
    for src, dst in ((browser, gateway), (gateway, browser)):
        # 40 bytes of Opus, RTP with its header extensions, the SRTP tag, the UDP header
        assert median_udp_bytes(result.capture, src, dst) < 100, (src, dst)
    assert_both_sides_hear(stack, result)
