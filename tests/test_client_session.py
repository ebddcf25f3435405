"""The client Session and Call against a tiny in-test gateway speaking the gateway protocol:
no Kamailio, no pjsua2."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import websockets
from websockets.asyncio.server import ServerConnection

from lab.client import Call, LoginFailed, Session
from lab.config import SipAccount
from lab.signaling import (
    CLIENT_MESSAGES,
    GATEWAY_MESSAGES,
    CallStatus,
    ClientMessage,
    Connect,
    Connected,
    DtmfEvent,
    Failed,
    GatewayMessage,
    Incoming,
    PlaceCall,
    Reject,
    SendDtmf,
    Status,
)

S = CallStatus
ACCOUNT = SipAccount("VKP009", "VKP009", "secret", "127.0.0.3", "127.0.0.3")
Script = Callable[[ClientMessage, "FakeGateway"], Awaitable[None]]
Start = Callable[[Script], Awaitable["FakeGateway"]]


class FakeGateway:
    """Logs in the right password; every other message goes to the test's script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[ClientMessage] = []
        self.ws: ServerConnection | None = None
        self.url = ""

    async def send(self, msg: GatewayMessage) -> None:
        assert self.ws is not None
        await self.ws.send(GATEWAY_MESSAGES.encode(msg))

    async def serve(self, ws: ServerConnection) -> None:
        self.ws = ws
        async for text in ws:
            msg = CLIENT_MESSAGES.decode(text)
            self.received.append(msg)
            if isinstance(msg, Connect):
                ok = msg.sip.password == ACCOUNT.password
                await self.send(
                    Connected(login=msg.sip.login, domain=msg.sip.domain)
                    if ok
                    else Failed(code=403, reason="Forbidden")
                )
            else:
                await self.script(msg, self)


@pytest.fixture
async def gateway() -> AsyncIterator[Start]:
    servers = []

    async def start(script: Script) -> FakeGateway:
        fake = FakeGateway(script)
        server = await websockets.serve(fake.serve, "127.0.0.1", 0)
        servers.append(server)
        fake.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
        return fake

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def status(call_id: str, st: CallStatus, code: int | None, reason: str = "") -> Status:
    return Status(call_id=call_id, status=st, sip_code=code, reason=reason, t=1.0)


async def nothing(msg: ClientMessage, gateway: FakeGateway) -> None:
    pass


async def test_a_wrong_password_is_login_failed(gateway: Start) -> None:
    fake = await gateway(nothing)
    session = Session(fake.url, SipAccount("VKP009", "VKP009", "wrong", "127.0.0.3", "127.0.0.3"))
    with pytest.raises(LoginFailed) as info:
        await session.connect(timeout=5)
    assert (info.value.code, info.value.reason) == (403, "Forbidden")


async def test_a_busy_callee_goes_trying_ring_busy(gateway: Start) -> None:
    async def busy(msg: ClientMessage, fake: FakeGateway) -> None:
        if isinstance(msg, PlaceCall):
            await fake.send(status(msg.call_id, S.TRYING, None))
            await fake.send(status(msg.call_id, S.RING, 180, "Ringing"))
            await fake.send(status(msg.call_id, S.BUSY, 486, "Busy Here"))

    fake = await gateway(busy)
    async with Session(fake.url, ACCOUNT) as session:
        call = session.create_call("+7 916 123-45-67", call_id="t-busy")
        await asyncio.wait_for(call.call(), 10)  # returns once the call is over, with no SDP answer
        assert await call.ended(timeout=5) == S.BUSY
        assert [(e.status, e.sip_code, e.reason) for e in call.history] == [
            (S.PENDING, None, ""),
            (S.TRYING, None, ""),
            (S.RING, 180, "Ringing"),
            (S.BUSY, 486, "Busy Here"),
        ]
        placed = fake.received[1]
        assert isinstance(placed, PlaceCall)
        assert (placed.call_id, placed.callee) == ("t-busy", "+79161234567")
        assert "m=audio" in placed.sdp


async def test_an_incoming_call_rings_and_is_rejected(gateway: Start) -> None:
    async def decline(msg: ClientMessage, fake: FakeGateway) -> None:
        if isinstance(msg, Reject):
            await fake.send(status(msg.call_id, S.FAILED, msg.code, "rejected (Busy Here)"))

    fake = await gateway(decline)
    rang: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
    async with Session(fake.url, ACCOUNT) as session:
        session.on_incoming(rang.set_result)
        await fake.send(Incoming(call_id="in-1", caller="+79990000001", callee="VKP009"))
        call = await asyncio.wait_for(rang, 5)
        assert (call.call_id, call.callee, call.direction, call.status) == (
            "in-1",
            "+79990000001",
            "in",
            S.RING,
        )
        await call.reject(486)
        assert await call.ended(timeout=5) == S.FAILED
        assert fake.received[-1] == Reject(call_id="in-1", code=486)
        assert (call.sip_code, call.reason) == (486, "rejected (Busy Here)")


async def test_digits_both_ways_and_a_lost_gateway(gateway: Start) -> None:
    async def talk(msg: ClientMessage, fake: FakeGateway) -> None:
        assert fake.ws is not None
        if isinstance(msg, PlaceCall):
            await fake.send(status(msg.call_id, S.ESTABLISHED, 200, "OK"))
        elif isinstance(msg, SendDtmf):
            await fake.ws.send('{"type": "event", "call_id": "t-dtmf", "event": "dtmf"}')  # skipped
            for digit in "42":
                await fake.send(DtmfEvent(call_id=msg.call_id, digit=digit, method="rfc4733"))

    fake = await gateway(talk)
    async with Session(fake.url, ACCOUNT) as session:
        call = session.create_call("+79161234567", call_id="t-dtmf")
        placing = asyncio.ensure_future(call.call())
        assert await call.wait_for(S.ESTABLISHED, timeout=5) == S.ESTABLISHED
        await call.send_dtmf("12#", "info")
        for _ in range(100):
            if len(call.events) == 2:
                break
            await asyncio.sleep(0.02)
        assert fake.received[-1] == SendDtmf(call_id="t-dtmf", digits="12#", method="info")
        assert call.dtmf_received == "42"
        assert call.events[0] == {"event": "dtmf", "digit": "4", "method": "rfc4733"}
        assert fake.ws is not None
        await fake.ws.close()  # the gateway goes away
        assert await call.ended(timeout=5) == S.FAILED
        assert call.reason == "connection to the gateway was lost"
        placing.cancel()
        await asyncio.gather(placing, return_exceptions=True)
