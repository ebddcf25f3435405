"""A wrong password is refused at once with 403 and a reason, however and whenever it comes:
again and again, right after a good login on the same connection, during a call; and a
password too big for the gateway is refused at once too, not by the client's timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import websockets

from lab.client import LoginFailed, Session
from lab.scenario import lab_account, place_call
from lab.signaling import CLIENT_MESSAGES, GATEWAY_MESSAGES, Connect, Connected, Failed, LoginForm
from lab.stack import Stack

pytestmark = pytest.mark.slow

REFUSED = Failed(code=403, reason="the SIP server refused the login (403 Forbidden - authentication failed)")


async def login(ws: websockets.ClientConnection, form: LoginForm) -> object:
    await ws.send(CLIENT_MESSAGES.encode(Connect(sip=form)))
    return GATEWAY_MESSAGES.decode(await asyncio.wait_for(ws.recv(), 5))


async def test_a_wrong_password_is_always_403(stack: Stack) -> None:
    cfg = stack.cfg
    good = LoginForm(**dataclasses.asdict(lab_account(cfg)))
    wrong = dataclasses.replace(good, password="not-the-password")
    async with websockets.connect(cfg.ws_url) as ws:
        assert [await login(ws, wrong) for _ in range(3)] == [REFUSED] * 3
        for _ in range(3):  # the good account is removed (unregistering) as the wrong one registers
            assert await login(ws, good) == Connected(login=good.login, domain=good.domain)
            assert await login(ws, wrong) == REFUSED
    call = asyncio.create_task(place_call(cfg, "+79161234567", duration=2.0, capture=False, report=False))
    await asyncio.sleep(1.0)
    async with websockets.connect(cfg.ws_url) as ws:
        assert await login(ws, wrong) == REFUSED
    result = await call
    assert result.ok, (result.final_status, result.sip_code, result.reason)


async def test_a_password_too_big_for_the_gateway_is_refused_at_once(stack: Stack) -> None:
    session = Session(stack.cfg.ws_url, lab_account(stack.cfg, "x" * 300_000), host=stack.cfg.browser.host)
    started = time.monotonic()
    with pytest.raises(LoginFailed) as refused:
        await session.connect()
    assert time.monotonic() - started < 2.0
    assert refused.value.code == 413
    assert "refused the login form as too big" in refused.value.reason
