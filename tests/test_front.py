"""The gateway's front (lab.gateway.front) before stand-in workers: Unix sockets that say
which worker they are and echo what they get. The real pool: test_pools."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

from lab.config import LabConfig
from lab.gateway.front import Front


async def worker(path: Path, name: bytes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name + b"\n")
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    return await asyncio.start_unix_server(handle, str(path))


async def client(port: int) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await asyncio.wait_for(reader.readline(), 2), reader, writer


async def test_clients_spread_over_the_workers_and_a_dead_one_is_skipped(tmp_path: Path) -> None:
    cfg = dataclasses.replace(LabConfig(home=tmp_path), gateway_workers=3)
    cfg.run_dir.mkdir(parents=True)
    w1, w2, w3 = cfg.gateway_pool
    servers = [await worker(cfg.worker_socket(w), w.name.encode()) for w in (w1, w2)]  # w3 is down
    front = Front(cfg)
    server = await asyncio.start_server(front.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        clients = await asyncio.gather(*(client(port) for _ in range(8)))  # all at once
        assert Counter(name for name, _, _ in clients) == {b"Gateway w1\n": 4, b"Gateway w2\n": 4}
        _, reader, writer = clients[0]
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"ping\n"  # bytes pass both ways
        for _, _, writer in clients:
            writer.close()
        await asyncio.sleep(0.1)
        assert front.connections == {w1.name: 0, w2.name: 0, w3.name: 0}  # closed ones are let go
        # With no worker up, the client's connection is closed.
        for s in servers:
            s.close()
            await s.wait_closed()
        for w in (w1, w2):
            cfg.worker_socket(w).unlink()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    finally:
        server.close()
