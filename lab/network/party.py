"""Process main for a network party (Internet, Core network, Mobile network): a relay on the
network's own address and its control socket (lab.network.control), until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from typing import cast

from lab.config import LabConfig, Party
from lab.network.control import (
    MAX_DATAGRAM,
    REPLIES,
    REQUESTS,
    Counts,
    Join,
    Joined,
    Ping,
    Pong,
    Refused,
    Reply,
    Report,
)
from lab.network.impairment import Impairment, ImpairmentError
from lab.network.relay import JoinRefused, Relay
from lab.process import freeze_startup_heap
from lab.sip.party import load_config, setup_logging
from lab.typedjson import MessageError

log = logging.getLogger("network")


class Control(asyncio.DatagramProtocol):
    def __init__(self, party: Party, relay: Relay) -> None:
        self.party, self.relay = party, relay
        self.transport: asyncio.DatagramTransport | None = None
        self._busy: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._answer(data, addr))
        self._busy.add(task)
        task.add_done_callback(self._busy.discard)

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.reply(data)
        if self.transport is not None:
            self.transport.sendto(REPLIES.encode(reply).encode()[:MAX_DATAGRAM], addr)

    async def reply(self, data: bytes) -> Reply:
        try:
            msg = REQUESTS.decode(data)
        except MessageError as exc:
            return Refused(reason=str(exc))
        if isinstance(msg, Ping):
            return Pong(network=self.party.name)
        if isinstance(msg, Report):
            return Counts(directions=self.relay.summary(msg.call))
        return await self.join(msg)

    async def join(self, msg: Join) -> Reply:
        try:
            impair = {d: Impairment.parse(spec) for d, spec in (msg.impair or {}).items()}
            await self.relay.join(msg.call, msg.owner, msg.ports, msg.toward, impair)
        except (ImpairmentError, JoinRefused) as exc:
            log.warning("call %s: %s refused: %s", msg.call, msg.owner, exc)
            return Refused(reason=str(exc))
        log.info(
            "call %s: %s joins with ports %s%s",
            msg.call,
            msg.owner,
            ",".join(map(str, msg.ports)),
            f" impairing {msg.impair}" if msg.impair else "",
        )
        return Joined()


def _more_files() -> None:
    """A network mirrors two ports per party of each call; leave room for many calls."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))


async def serve(cfg: LabConfig, party: Party) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = Relay(party.host)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Control(party, relay), local_addr=(party.host, cfg.network_control_port)
    )
    freeze_startup_heap()
    log.info("ready on %s:%d", party.host, cfg.network_control_port)
    try:
        await stop.wait()
    finally:
        transport.close()
        relay.stop()


def main() -> None:
    cfg, party = load_config("calllab network party", "Mobile network")
    setup_logging(cfg, party)
    _more_files()
    asyncio.run(serve(cfg, party))


if __name__ == "__main__":
    main()
