"""Every recording of a call covers the whole call: a hold is in it as silence, and what was
said before the hold is still there after it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from lab import webrtc
from lab.audio import RATE, heard_match, read_wav
from lab.client import Session
from lab.config import PhonePolicy
from lab.scenario import LabCall, lab_account
from lab.signaling import CallStatus
from lab.stack import Stack

TALK_S, HOLD_S = 2.5, 2.0


def test_a_pause_in_the_track_is_recorded_as_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(webrtc.time, "monotonic", lambda: clock[0])
    recording = webrtc.Recording()
    frame = b"\x01\x00" * (RATE // 50)  # 20 ms
    for _ in range(50):
        recording.add(frame)
        clock[0] += 0.02 + np.random.default_rng(len(recording.chunks)).uniform(-0.01, 0.01)
    clock[0] += 1.5  # on hold: nothing comes
    for _ in range(50):
        recording.add(frame)
        clock[0] += 0.02
    pcm = np.frombuffer(b"".join(recording.chunks), dtype="<i2")
    assert abs(len(pcm) / RATE - (clock[0] - 100.0)) < 0.03  # as long as the track lasted
    assert pcm[:RATE].all() and pcm[-RATE:].all()  # late packets (10 ms of jitter) add nothing
    assert not pcm[RATE + 400 : int(2.5 * RATE) - 400].any()


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0


@pytest.mark.slow
async def test_recordings_cover_the_call_and_its_hold(stack: Stack) -> None:
    cfg = stack.cfg
    session = Session(cfg.ws_url, lab_account(cfg), host=cfg.browser.host)
    await session.connect()
    try:
        call = LabCall(cfg, session, "+79991234567", answer=PhonePolicy("answer", 0.0), report=False)
        assert await call.start() == CallStatus.ESTABLISHED
        established = time.time()
        await asyncio.sleep(TALK_S)
        await call.call.hold()
        await call.call.wait_for(CallStatus.HOLD, timeout=5)
        held = time.time()
        await asyncio.sleep(HOLD_S)
        await call.call.unhold()
        await call.call.wait_for(CallStatus.ESTABLISHED, timeout=5)
        resumed = time.time()
        await asyncio.sleep(TALK_S)
        await call.hang_up()
        ended = time.time()
        result = await call.finish()
    finally:
        await session.disconnect()
    assert result.ok, result
    length = ended - established
    prompts = {"phone": cfg.prompts_dir / "browser.wav", "browser": cfg.prompts_dir / "phone.wav"}
    for side, prompt in prompts.items():
        heard, rate = read_wav(Path(result.audio[f"{side}_received"] or ""))
        said, _ = read_wav(prompt)
        # The recording starts when the first audio arrives (within a few frames of the
        # answer) and ends with the call.
        assert abs(len(heard) / rate - length) < 0.4, (side, len(heard) / rate, length)
        before = heard[: int((held - established - 0.3) * rate)]
        during = heard[int((held - established + 0.5) * rate) : int((resumed - established - 0.3) * rate)]
        after = heard[int((resumed - established + 0.5) * rate) :]
        assert heard_match(said, before) > 0.85, (side, "before the hold")
        assert heard_match(said, after) > 0.85, (side, "after the hold")
        assert _rms(during) < 0.01 * _rms(before), (side, "the hold is silence")
