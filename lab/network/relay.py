"""A network party on the wire: a UDP relay that applies each call's impairment schedule.

The parties of a call that crosses this network join it with their media ports; the relay
mirrors each of them on its own address. A packet sent to (relay host, port P) goes to the
party that owns P, from (relay host, the sender's port), so that party's replies come back
through the relay too. Both ends name the relay's address in their SDP instead of their
own, so the capture shows each packet twice: before the network and after it, with what
the network did in between.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from lab.network.impairment import Impairment, Schedule

#: Calls whose counts the relay keeps for a Report after they end.
KEEP_CALLS = 64
#: asyncio's epoll waits in whole milliseconds, rounded up: a timer fires 0-1 ms late, half
#: a millisecond on average. A delayed packet is scheduled that much early to cancel it.
TIMER_LATENESS_S = 0.0005


@dataclass(frozen=True)
class Route:
    """A joined port: its owner, the call it carries and the direction packets to it travel."""

    owner: str
    call: str
    direction: str


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
    duplicated_seqs: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "delayed": self.delayed,
            "dropped_seqs": list(self.dropped_seqs),
            "duplicated_seqs": list(self.duplicated_seqs),
        }


@dataclass
class CallNetwork:
    """One call's two directions on this network."""

    schedules: dict[str, Schedule]
    counts: dict[str, DirectionCount] = field(default_factory=dict)


class _Port(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, port: int) -> None:
        self.relay, self.port = relay, port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.forward(data, addr, self.port)


class JoinRefused(ValueError):
    """A port this relay cannot mirror for the call; the message says why."""


class Relay:
    def __init__(self, host: str) -> None:
        self.host = host
        self.routes: dict[int, Route] = {}
        self.calls: dict[str, CallNetwork] = {}  # oldest first
        self.unroutable = 0  # to or from a port no party joined
        self._ports: dict[int, _Port] = {}

    async def join(
        self,
        call: str,
        owner: str,
        ports: Sequence[int],
        toward: str,
        impair: Mapping[str, Impairment] | None = None,
    ) -> None:
        """Mirror `owner`'s `ports` for `call`. A port is taken over from a call that ended
        (its owner reuses it), never from another owner: that would cross two calls."""
        for port in ports:
            route = self.routes.get(port)
            if route is not None and route.owner != owner:
                raise JoinRefused(f"port {port} is mirrored for {route.owner} (call {route.call})")
        loop = asyncio.get_running_loop()
        for port in ports:
            if port not in self._ports:
                try:
                    _, protocol = await loop.create_datagram_endpoint(
                        functools.partial(_Port, self, port), local_addr=(self.host, port)
                    )
                except OSError as exc:
                    raise JoinRefused(f"cannot mirror port {port} on {self.host}: {exc.strerror}") from None
                self._ports[port] = protocol
            self.routes[port] = Route(owner, call, toward)
        if call not in self.calls:
            self.calls[call] = CallNetwork({})
            while len(self.calls) > KEEP_CALLS:
                self._forget(next(iter(self.calls)))
        network = self.calls[call]
        for direction, impairment in (impair or {}).items():
            # A re-INVITE joins again: the schedule (its random stream) goes on unchanged.
            network.schedules.setdefault(direction, Schedule(impairment))

    def _forget(self, call: str) -> None:
        """Drop an old call's counts and close the ports still mirrored for it (the browser
        leg's ICE ports are new every call: kept, they would pile up)."""
        del self.calls[call]
        for port in [p for p, route in self.routes.items() if route.call == call]:
            del self.routes[port]
            mirror = self._ports.pop(port, None)
            if mirror is not None and mirror.transport is not None:
                mirror.transport.close()

    def forward(self, data: bytes, src: tuple[str, int], port: int) -> None:
        route, out = self.routes.get(port), self._ports.get(src[1])
        if route is None or out is None or out.transport is None:
            self.unroutable += 1
            return
        network = self.calls.get(route.call)
        if network is None:
            self.unroutable += 1
            return
        dst = (route.owner, port)
        count = network.counts.setdefault(route.direction, DirectionCount())
        count.packets += 1
        schedule = network.schedules.get(route.direction)
        if schedule is None:  # the direction nobody asked to impair: a perfect network
            out.transport.sendto(data, dst)
            return
        fate = schedule.fate(time.monotonic(), len(data))
        seq = rtp_sequence(data)
        if fate.dropped:
            count.dropped += 1
            if seq is not None:
                count.dropped_seqs.append(seq)
            return
        if len(fate.deliveries) > 1:
            count.duplicated += 1
            if seq is not None:
                count.duplicated_seqs.append(seq)
        count.delayed += fate.deliveries[0] > 0
        loop = asyncio.get_running_loop()
        for delay in fate.deliveries:
            if delay > TIMER_LATENESS_S:
                loop.call_later(delay - TIMER_LATENESS_S, self._deliver, out.transport, data, dst)
            else:
                out.transport.sendto(data, dst)

    @staticmethod
    def _deliver(transport: asyncio.DatagramTransport, data: bytes, dst: tuple[str, int]) -> None:
        if not transport.is_closing():  # a packet still in flight when the relay stops is lost
            transport.sendto(data, dst)

    def summary(self, call: str) -> dict[str, dict[str, object]]:
        """What the network did to `call`, per direction (empty for a call it never saw)."""
        network = self.calls.get(call)
        if network is None:
            return {}
        return {direction: count.summary() for direction, count in network.counts.items()}

    def stop(self) -> None:
        for port in self._ports.values():
            if port.transport is not None:
                port.transport.close()
        self._ports.clear()
