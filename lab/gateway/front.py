"""The gateway's one WebSocket endpoint in front of its workers.

pjsua2 holds 4 calls a process, so the gateway is a pool of worker processes (lab.gateway.
server, LabConfig.gateway_pool), each with its SIP port and RTP range, listening on a Unix
socket of the lab's run directory. This process owns ws_port: each client connection is
handed, as bytes both ways, to the worker with the fewest connections open (the first of
them on a tie), which then holds that client's SIP account and calls until it disconnects.
Only signaling passes here: a worker's media goes from its own ICE candidates and RTP ports.
A worker that does not take the connection (down, restarting) is skipped for the next; when
none does, the client's connection is closed and the log says why. A full worker answers a
call with its 503, as a lone gateway did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from lab.config import LabConfig, Party
from lab.sip.party import load_config, setup_logging

log = logging.getLogger("gateway.front")

CHUNK = 64 * 1024


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


class Front:
    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.connections = {worker.name: 0 for worker in cfg.gateway_pool}

    def choices(self) -> list[Party]:
        """The workers, the least busy first (sorted() keeps the pool's order on a tie)."""
        return sorted(self.cfg.gateway_pool, key=lambda worker: self.connections[worker.name])

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        peer = client_writer.get_extra_info("peername")
        for worker in self.choices():
            self.connections[worker.name] += 1  # before the await: clients connecting at once spread
            try:
                reader, writer = await asyncio.open_unix_connection(self.cfg.worker_socket(worker))
            except OSError as exc:
                self.connections[worker.name] -= 1
                log.warning("%s does not take connections (%s): trying the next worker", worker.name, exc)
                continue
            try:
                await asyncio.gather(_copy(client_reader, writer), _copy(reader, client_writer))
            finally:
                self.connections[worker.name] -= 1
            return
        log.error("client %s: no gateway worker takes connections; closing it", peer)
        client_writer.close()


async def serve(cfg: LabConfig, party: Party) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    front = Front(cfg)
    server = await asyncio.start_server(front.handle, party.host, cfg.ws_port)
    log.info("ready on %s:%d for %d workers", party.host, cfg.ws_port, len(cfg.gateway_pool))
    try:
        await stop.wait()
    finally:
        server.close()


def main() -> None:
    cfg, party = load_config("calllab gateway front", "Gateway")
    setup_logging(cfg, party)
    asyncio.run(serve(cfg, party))


if __name__ == "__main__":
    main()
