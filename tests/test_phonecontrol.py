"""The phone's control socket, both ends, without a phone: hello, commands and their
replies (past broadcast events), refusals that name the field."""

from __future__ import annotations

import asyncio
import logging

import websockets

from lab import phonecontrol as pc
from lab.tasks import Tasks


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

    server = pc.ControlServer(
        "127.0.0.1",
        0,
        lambda: pc.Hello(policy="after:1", calls=0),
        handle,
        Tasks("phone", logging.getLogger("test")),
    )
    await server.start()
    url = f"ws://127.0.0.1:{next(iter(server.server.sockets)).getsockname()[1]}/"
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
