"""Every way a call can fail: a status, a SIP code and a sentence naming the party at fault,
within a bounded time, and the lab usable for the next call."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator

import pytest

from lab.audio import read_wav
from lab.client import CALL_STATUS, Session
from lab.config import LabConfig, PhonePolicy
from lab.scenario import LabCall, lab_account, place_call
from lab.stack import Stack, answers

pytestmark = pytest.mark.slow
NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)


@pytest.fixture(scope="module")
async def lab(lab_config: LabConfig) -> AsyncIterator[Stack]:
    cfg = dataclasses.replace(lab_config, no_answer_timeout=2.0, media_timeout=2.0, pstn_channel_count=2)
    stack = Stack(cfg)
    await stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def test_nobody_answers(lab: Stack) -> None:
    t0 = time.monotonic()
    result = await place_call(lab.cfg, NUMBER, answer=PhonePolicy("never"), report=False)
    assert (result.final_status, result.sip_code) == ("FAILED", 480)
    assert "No answer within 2 s" in result.reason and time.monotonic() - t0 < 6


async def test_pstn_gateway_down(lab: Stack) -> None:
    lab.kill("PSTN gateway")
    try:
        t0 = time.monotonic()
        result = await place_call(lab.cfg, NUMBER, report=False)
        assert (result.final_status, result.sip_code) == ("FAILED", 503)
        # The SIP server gives each of the 2 channels 1 s to answer.
        assert "PSTN gateway 127.0.0.4 does not answer" in result.reason and time.monotonic() - t0 < 5
    finally:
        await lab.restart("PSTN gateway")
    assert (await place_call(lab.cfg, NUMBER, duration=0.5, answer=NOW, report=False)).ok


async def open_call(lab: Stack, number: str = NUMBER) -> tuple[Session, LabCall]:
    session = Session(lab.cfg.ws_url, lab_account(lab.cfg), host=lab.cfg.browser.host)
    await session.connect()
    call = LabCall(lab.cfg, session, number, answer=NOW, report=False)
    assert await call.start() == CALL_STATUS.ESTABLISHED, (call.call.sip_code, call.call.reason)
    return session, call


async def test_all_channels_busy(lab: Stack) -> None:
    """One call per PSTN channel: with both of this lab's channels taken, the next call is
    refused by the SIP server, and a channel serves again once its call is over."""
    opened = [await open_call(lab), await open_call(lab, "+79990000002")]
    try:
        result = await place_call(lab.cfg, NUMBER, answer=NOW, report=False)
        assert (result.final_status, result.sip_code) == ("FAILED", 503)
        assert result.reason == "PSTN gateway 127.0.0.4: all channels busy"
    finally:
        for session, call in opened:
            await call.hang_up()
            await call.finish()
            await session.disconnect()
    assert (await place_call(lab.cfg, NUMBER, duration=0.5, answer=NOW, report=False)).ok


@contextlib.asynccontextmanager
async def killed_mid_call(lab: Stack, party: str, after: float = 1.0) -> AsyncIterator[LabCall]:
    """An established call during which `party` is killed, `after` s in. Afterwards the
    call is finished (capture stopped, recordings filed), the party restarted, and the lab
    must serve the next call."""
    session, call = await open_call(lab)
    try:
        await asyncio.sleep(after)
        lab.kill(party)
        yield call
    finally:
        await call.finish()
        await session.disconnect()
        await lab.restart(party)
    assert (await place_call(lab.cfg, NUMBER, duration=0.5, answer=NOW, report=False)).ok


async def test_phone_killed_mid_call_ends_it_by_media_timeout(lab: Stack) -> None:
    async with killed_mid_call(lab, "Mobile phone") as call:
        t0 = time.monotonic()
        assert await call.call.ended(timeout=10) == CALL_STATUS.FINISH and time.monotonic() - t0 < 6
        assert call.call.reason == "remote hangup (PSTN gateway: no RTP from Mobile phone for 2 s)"
        assert call.call.sip_code == 408
        assert not (await call.finish()).ok  # `calllab call` exits 1: not a normal end


async def test_pstn_gateway_killed_mid_call_the_gateway_names_it(lab: Stack) -> None:
    async with killed_mid_call(lab, "PSTN gateway") as call:
        assert await call.call.ended(timeout=10) == CALL_STATUS.FINISH and call.call.sip_code == 408
        assert re.fullmatch(
            r"media timeout: no RTP from PSTN gateway \(127\.0\.0\.4:3\d{4}\) for 2 s", call.call.reason
        ), call.call.reason
        assert not (await call.finish()).ok


async def test_sip_server_killed_mid_call_media_goes_on(lab: Stack) -> None:
    async with killed_mid_call(lab, "SIP server") as call:
        await asyncio.sleep(3.0)  # RTP flows gateway <-> PSTN gateway directly
        assert call.call.status == CALL_STATUS.ESTABLISHED
        t0 = time.monotonic()
        await call.hang_up()
        assert await call.call.ended(timeout=5) == CALL_STATUS.FINISH and time.monotonic() - t0 < 3
    heard, rate = read_wav(call.folder / "browser_received.wav")
    assert len(heard) / rate > 3.5  # the browser kept hearing the phone after the server died


async def test_gateway_restarted_while_connected(lab: Stack) -> None:
    async with killed_mid_call(lab, "Gateway", after=0.0) as call:
        t0 = time.monotonic()
        assert await call.call.ended(timeout=5) == CALL_STATUS.FAILED and time.monotonic() - t0 < 2
        assert call.call.reason == "connection to the gateway was lost"


async def test_a_party_that_dies_is_reaped_reported_and_restarted(lab: Stack) -> None:
    """kill -9 from outside the lab (not Stack.kill): the supervisor reaps the process at once,
    records how it died, starts it again, and calls work as before (no 1 s wait on a dead
    PSTN channel)."""
    channel = lab.processes("PSTN gateway ch1")[0]
    assert channel.proc is not None
    old_pid = channel.proc.pid
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not (channel.deaths and channel.proc.pid != old_pid and await answers(lab.cfg, channel.party, 0.3)):
        assert time.monotonic() < deadline, f"PSTN gateway ch1 not restarted: {channel.deaths}"
        await asyncio.sleep(0.1)
    assert not os.path.exists(f"/proc/{old_pid}"), "the dead channel was left a zombie"
    death = channel.deaths[-1]
    assert (death["pid"], death["how"], death["restarted"]) == (old_pid, "signal 9 (SIGKILL)", True)
    state = json.loads(lab.state_path.read_text())
    assert state["parties"]["PSTN gateway ch1"]["deaths"][-1]["how"] == "signal 9 (SIGKILL)"
    result = await place_call(lab.cfg, NUMBER, duration=0.5, answer=NOW, report=False)
    assert result.ok and result.setup_ms is not None and result.setup_ms < 500, result.setup_ms


def raw_invite(source: tuple[str, int], to: tuple[str, int], max_forwards: int = 70) -> tuple[int, str]:
    """An INVITE straight from a foreign client; the first final response's code and reason."""
    branch = "z9hG4bK-" + os.urandom(4).hex()
    lines = [
        f"INVITE sip:{NUMBER}@{to[0]}:{to[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch={branch}",
        f"Max-Forwards: {max_forwards}",
        f"From: <sip:stranger@{source[0]}>;tag=s1",
        f"To: <sip:{NUMBER}@{to[0]}>",
        f"Call-ID: {os.urandom(6).hex()}@stranger",
        "CSeq: 1 INVITE",
        f"Contact: <sip:stranger@{source[0]}:{source[1]}>",
        "Content-Length: 0",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(source)
        sock.settimeout(3)
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), to)
        while True:
            status = sock.recv(4096).decode().split("\r\n", 1)[0].split(" ", 2)
            if int(status[1]) >= 200:
                return int(status[1]), status[2]


async def test_the_pstn_gateway_takes_calls_only_from_its_sip_server(lab: Stack) -> None:
    pstn = (lab.cfg.pstn.host, lab.cfg.pstn.sip_port)
    refused = await asyncio.to_thread(raw_invite, ("127.0.0.1", 5099), pstn)
    assert refused == (403, "PSTN gateway takes calls only from its SIP server 127.0.0.3")
    # From the SIP server's address, but with no hops left: 483, as RFC 3261 16.3 says.
    looped = await asyncio.to_thread(raw_invite, (lab.cfg.sipserver.host, 5098), pstn, 0)
    assert looped == (483, "Too Many Hops")
    assert (
        await place_call(lab.cfg, NUMBER, duration=0.5, answer=NOW, report=False)
    ).ok  # the channel is free
