"""A network party on the wire: a UDP relay that applies an impairment schedule per direction.

The relay mirrors the media ports of the two parties of a leg on its own address: a packet
sent to (relay host, port P) is forwarded to the party that owns P, from (relay host, the
sender's port), so that party's replies come back through the relay too. Both ends are
told the relay's address instead of each other's (the SDP they exchange names it), so the
capture shows each packet twice: before the network and after it, with what the network
did in between.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from lab.network.impairment import Schedule


@dataclass(frozen=True)
class Route:
    """The ports a party owns, and the direction a packet to them travels (`to-phone`...)."""

    host: str
    ports: range
    direction: str


@dataclass(frozen=True)
class PacketRecord:
    t: float  # time.time() of arrival at the relay
    direction: str
    src: tuple[str, int]
    dst: tuple[str, int]
    rtp_seq: int | None  # None for RTCP, STUN, DTLS
    dropped: bool
    delays_ms: tuple[float, ...]  # one per delivered copy


def rtp_sequence(data: bytes) -> int | None:
    """The RTP sequence number, or None for anything else (RTCP's types are 200-204)."""
    if len(data) < 12 or data[0] >> 6 != 2 or 200 <= data[1] <= 204:
        return None
    return int.from_bytes(data[2:4], "big")


@dataclass
class DirectionCount:
    packets: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0  # delivered later than it arrived (by the delay, jitter or rate limit)
    dropped_seqs: list[int] = field(default_factory=list)


class _Port(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, port: int) -> None:
        self.relay, self.port = relay, port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.forward(data, addr, self.port)


class Relay:
    def __init__(self, host: str, routes: list[Route], schedules: Mapping[str, Schedule]) -> None:
        self.host = host
        self.routes = routes
        self.schedules = schedules
        self.records: list[PacketRecord] = []
        self.counts = {direction: DirectionCount() for direction in schedules}
        self.unroutable = 0  # from a port the relay does not mirror: it could not carry replies
        self._ports: dict[int, _Port] = {}

    def _route(self, port: int) -> Route | None:
        return next((r for r in self.routes if port in r.ports), None)

    async def start(self) -> Relay:
        loop = asyncio.get_running_loop()
        for route in self.routes:
            for port in route.ports:
                _, protocol = await loop.create_datagram_endpoint(
                    functools.partial(_Port, self, port), local_addr=(self.host, port)
                )
                self._ports[port] = protocol
        return self

    def forward(self, data: bytes, src: tuple[str, int], port: int) -> None:
        route, out = self._route(port), self._ports.get(src[1])
        if route is None or out is None or out.transport is None:
            self.unroutable += 1
            return
        dst = (route.host, port)
        fate = self.schedules[route.direction].fate(time.monotonic(), len(data))
        count = self.counts[route.direction]
        count.packets += 1
        seq = rtp_sequence(data)
        if fate.dropped:
            count.dropped += 1
            if seq is not None:
                count.dropped_seqs.append(seq)
        count.duplicated += len(fate.deliveries) > 1
        count.delayed += bool(fate.deliveries) and fate.deliveries[0] > 0
        delays_ms = tuple(d * 1000 for d in fate.deliveries)
        self.records.append(
            PacketRecord(time.time(), route.direction, src, dst, seq, fate.dropped, delays_ms)
        )
        loop = asyncio.get_running_loop()
        for delay in fate.deliveries:
            loop.call_later(delay, self._deliver, out.transport, data, dst)

    @staticmethod
    def _deliver(transport: asyncio.DatagramTransport, data: bytes, dst: tuple[str, int]) -> None:
        if not transport.is_closing():  # a packet still in flight when the relay stops is lost
            transport.sendto(data, dst)

    def summary(self) -> dict[str, dict[str, int]]:
        """What the network did, per direction: the `impairments` counts of a call's JSON."""
        return {
            direction: {
                "packets": c.packets,
                "dropped": c.dropped,
                "duplicated": c.duplicated,
                "delayed": c.delayed,
            }
            for direction, c in self.counts.items()
        }

    def stop(self) -> None:
        for port in self._ports.values():
            if port.transport is not None:
                port.transport.close()
        self._ports.clear()
