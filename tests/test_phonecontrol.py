"""The phone's control socket, both ends, without a phone: hello, commands and their
replies (past broadcast events), refusals that name the field."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import websockets

from lab import phonecontrol as pc
from lab.tasks import Tasks


async def serving(
    handle: Callable[[pc.Command], pc.Reply | Awaitable[pc.Reply]],
) -> tuple[pc.ControlServer, str]:
    """A control server on a free port of 127.0.0.1, and its URL."""
    hello = pc.Hello(policy="after:1", calls=0)
    server = pc.ControlServer(
        "127.0.0.1", 0, lambda: hello, handle, Tasks("phone", logging.getLogger("test"))
    )
    await server.start()
    return server, f"ws://127.0.0.1:{next(iter(server.server.sockets)).getsockname()[1]}/"


async def test_commands_get_their_replies_and_watchers_get_events() -> None:
    got: list[pc.Command] = []
    server: pc.ControlServer

    def handle(cmd: pc.Command) -> pc.Reply:
        got.append(cmd)
        if isinstance(cmd, pc.SetPolicy):
            # An event broadcast before the reply: command() must pass over it.
            server.broadcast(pc.Ringing(number="+7916", caller="VKP009", call_id="c1", policy="manual"))
            if cmd.value == "sometimes":
                raise ValueError("answer policy 'sometimes': use after:S, ...")
            return pc.PolicySet(policy=cmd.value)
        return pc.Refused(reason=f"{cmd.KIND}: no call")

    server, url = await serving(handle)
    try:
        watcher = pc.PhoneControl(url)
        assert await watcher.connect() == pc.Hello(policy="after:1", calls=0)

        assert await pc.command(url, pc.SetPolicy(value="busy")) == pc.PolicySet(policy="busy")
        assert await pc.command(url, pc.HangupCall()) == pc.Refused(reason="hangup: no call")
        refused = await pc.command(url, pc.SetPolicy(value="sometimes"))
        assert refused == pc.Refused(reason="answer policy 'sometimes': use after:S, ...")
        assert got == [pc.SetPolicy(value="busy"), pc.HangupCall(), pc.SetPolicy(value="sometimes")]

        async with websockets.connect(url) as raw:
            await raw.recv()  # hello
            await raw.send('{"cmd": "dial", "to": 5}')
            assert pc.EVENTS.decode(await raw.recv()) == pc.Refused(
                reason="dial.to: expected a string, got 5"
            )

        events = watcher.events()
        ringing = await asyncio.wait_for(anext(events), 2)
        assert ringing == pc.Ringing(number="+7916", caller="VKP009", call_id="c1", policy="manual")
        await watcher.close()
    finally:
        server.close()


async def test_await_report_is_answered_when_the_report_is_filed() -> None:
    filed = asyncio.Event()

    async def wait_for_report(call_id: str) -> pc.Reply:
        await filed.wait()
        return pc.Filed(call_id=call_id, path=f"/captures/{call_id}/phone.json")

    def handle(cmd: pc.Command) -> pc.Reply | Awaitable[pc.Reply]:
        assert isinstance(cmd, pc.AwaitReport)
        return wait_for_report(cmd.call_id)

    server, url = await serving(handle)
    try:
        waiting = asyncio.ensure_future(pc.command(url, pc.AwaitReport(call_id="c7")))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # the reply waits for the filing, not for a poll
        filed.set()
        assert await asyncio.wait_for(waiting, 2) == pc.Filed(call_id="c7", path="/captures/c7/phone.json")
        assert pc.COMMANDS.decode('{"cmd": "report", "call_id": "c7"}') == pc.AwaitReport(
            call_id="c7", timeout=5.0
        )
    finally:
        server.close()
