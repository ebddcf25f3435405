"""The real gateway under a bad client: every bad message is answered, no SIP call is
placed for an offer without audio, a 9th login is refused, and the gateway goes on."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import websockets

from lab.client import LoginFailed, Session
from lab.scenario import lab_account, place_call
from lab.signaling import (
    CLIENT_MESSAGES,
    GATEWAY_MESSAGES,
    CallStatus,
    Connect,
    Connected,
    Error,
    LoginForm,
    PlaceCall,
    Status,
)
from lab.sip.endpoint import MAX_ACCOUNTS
from lab.stack import Stack, gateway_ping

pytestmark = pytest.mark.slow


async def test_bad_messages_and_a_login_too_many(stack: Stack) -> None:
    cfg = stack.cfg
    account = lab_account(cfg)
    form = LoginForm(**dataclasses.asdict(account))
    async with websockets.connect(cfg.ws_url, max_size=256 * 1024) as ws:
        await ws.send(CLIENT_MESSAGES.encode(Connect(sip=form)))
        assert isinstance(GATEWAY_MESSAGES.decode(await ws.recv()), Connected)
        bad = [
            "[" * 50_000,
            '{"type": "dtmf", "call_id": ["x"], "digits": "1"}',
            CLIENT_MESSAGES.encode(PlaceCall(call_id="abuse-1", callee="+79161234567", sdp="")),
            CLIENT_MESSAGES.encode(PlaceCall(call_id="abuse-2", callee="+79161234567", sdp="v=0\x00garbage")),
            CLIENT_MESSAGES.encode(
                PlaceCall(call_id="abuse-3", callee="+79161234567", sdp="", jitter_buffer="elastic:20")
            ),
        ]
        answers = []
        for text in bad:
            await ws.send(text)
            answers.append(GATEWAY_MESSAGES.decode(await ws.recv()))
    assert answers[:2] == [
        Error(reason="bad message: client message is nested too deeply"),
        Error(reason="bad message: dtmf.call_id: expected a string, got list"),
    ]
    assert [(a.call_id, a.status, a.sip_code) for a in answers[2:] if isinstance(a, Status)] == [
        ("abuse-1", CallStatus.FAILED, 488),
        ("abuse-2", CallStatus.FAILED, 488),
        ("abuse-3", CallStatus.FAILED, 400),
    ]
    assert isinstance(answers[-1], Status) and answers[-1].reason == (
        "call.jitter_buffer: jitter buffer 'elastic:20': write fixed:MS or adaptive:MIN-MAX, e.g. fixed:20"
    )
    assert (await gateway_ping(cfg.ws_url)).active_calls == 0  # no SIP call was placed

    # The front spreads the logins over the workers: every worker's account table is full first.
    room = MAX_ACCOUNTS * len(cfg.gateway_pool)
    sessions = [Session(cfg.ws_url, account, host=cfg.browser.host) for _ in range(room + 1)]
    try:
        for session in sessions[:room]:
            await session.connect()
        with pytest.raises(LoginFailed) as refused:
            await sessions[-1].connect()
        assert refused.value.code == 503
        assert f"all {MAX_ACCOUNTS} SIP accounts of this process are in use" in refused.value.reason
    finally:
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.disconnect()
    result = await place_call(cfg, "+79161234567", duration=0.5, capture=False, report=False)
    assert result.ok, (result.final_status, result.sip_code, result.reason)
