"""The network parties' control protocol: one JSON datagram in, one out, on UDP
(network host, network_control_port).

A party whose call goes through a network joins it with the RTP and RTCP ports of its SDP
before that SDP is sent (`Join`); the network then mirrors them on its own address. The
offerer's Join carries the impairments, per direction, as `--impair` specs. After the call,
`Report` returns what the network did to each direction of it.

`request()` blocks (at most `timeout`): pjsua2 edits an SDP on its own thread and must have
the answer before the SDP leaves. Asyncio code uses `arequest()`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from lab.config import LabConfig
from lab.network.legs import DIRECTIONS, LegImpairment
from lab.typedjson import Codec, MessageError

REQUEST_TIMEOUT = 0.5  # s: a network party on loopback answers in well under a millisecond
MAX_DATAGRAM = 65507


@dataclass(frozen=True, kw_only=True)
class Join:
    """Mirror `owner`'s `ports` for `call`: packets to them travel `toward` (to-phone or
    to-browser). `impair` (direction -> spec) is set by the offerer, once per call."""

    KIND: ClassVar[str] = "join"
    call: str
    owner: str
    ports: list[int]
    toward: str
    impair: dict[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class Report:
    KIND: ClassVar[str] = "report"
    call: str


@dataclass(frozen=True, kw_only=True)
class Ping:
    KIND: ClassVar[str] = "ping"


@dataclass(frozen=True, kw_only=True)
class Joined:
    KIND: ClassVar[str] = "joined"


@dataclass(frozen=True, kw_only=True)
class Counts:
    """Per direction: packets, dropped, duplicated, delayed, and the RTP sequence numbers
    of the dropped packets."""

    KIND: ClassVar[str] = "counts"
    directions: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Pong:
    KIND: ClassVar[str] = "pong"
    network: str


@dataclass(frozen=True, kw_only=True)
class Refused:
    KIND: ClassVar[str] = "refused"
    reason: str


Request = Join | Report | Ping
Reply = Joined | Counts | Pong | Refused
REQUESTS: Codec[Request] = Codec("network control", "op", Join, Report, Ping)
REPLIES: Codec[Reply] = Codec("network control", "op", Joined, Counts, Pong, Refused)


class NetworkUnreachable(RuntimeError):
    """The network party did not answer; the message names it and its address."""


def request(
    name: str, address: tuple[str, int], msg: Request, timeout: float = REQUEST_TIMEOUT, *, source: str
) -> Reply:
    """`msg` to the network party `name` from `source`, the asking party's own address: its
    lab's capture shows who asked, and no other lab's capture sees it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.bind((source, 0))
            sock.sendto(REQUESTS.encode(msg).encode(), address)
            data, _ = sock.recvfrom(MAX_DATAGRAM)
        except OSError as exc:  # socket.timeout is one
            reason = "no answer" if isinstance(exc, TimeoutError) else str(exc)
            raise NetworkUnreachable(
                f"{name} at {address[0]}:{address[1]}: {reason} within {timeout:g} s to {msg.KIND}"
            ) from None
    try:
        return REPLIES.decode(data)
    except MessageError as exc:
        raise NetworkUnreachable(f"{name} answered {msg.KIND} with a bad message: {exc}") from None


async def arequest(
    name: str, address: tuple[str, int], msg: Request, timeout: float = REQUEST_TIMEOUT, *, source: str
) -> Reply:
    return await asyncio.to_thread(request, name, address, msg, timeout, source=source)


async def what_the_networks_did(
    cfg: LabConfig, call: str, asked: Sequence[LegImpairment]
) -> list[dict[str, object]]:
    """The `impairments` of a call's JSON: per impaired leg and direction, what was asked
    (`spec`, "" for the direction left perfect) and what its network did."""
    rows: list[dict[str, object]] = []
    for leg in dict.fromkeys(item.leg for item in asked):
        network = cfg.networks[leg]
        specs = {item.direction: item.impairment.spec() for item in asked if item.leg == leg}
        try:
            address = (network.host, cfg.network_control_port)
            reply = await arequest(network.name, address, Report(call=call), source=cfg.browser.host)
            counts = reply.directions if isinstance(reply, Counts) else {}
            error = "" if isinstance(reply, Counts) else f"{network.name} answered {reply}"
        except NetworkUnreachable as exc:
            counts, error = {}, str(exc)
        for direction in DIRECTIONS:
            if direction in specs or direction in counts:
                row: dict[str, object] = {"leg": leg, "direction": direction, "network": network.name}
                row["spec"] = specs.get(direction, "")
                row.update(counts.get(direction, {"packets": 0, "dropped": 0, "duplicated": 0, "delayed": 0}))
                if error:
                    row["error"] = error
                rows.append(row)
    return rows
