"""Stand-ins for the parts of an aiortc transceiver the gateway's relays touch (its codecs,
its receiver's packet handler, its sender's SSRC, RTCP handler and DTLS transport), for
tests of lab.gateway.relay and its kinds without a peer connection."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import RtpPacket

SENDER_SSRC = 0x1111  # the gateway's sender's, which the packets toward the browser get


class FakeTransport:
    state = "connected"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


class FakeSender:
    def __init__(self) -> None:
        self._ssrc = SENDER_SSRC
        self.transport = FakeTransport()
        self.rtcp: list[Any] = []

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        self.rtcp.append(packet)


class FakeReceiver:
    transport = None  # no DTLS: the relay stays on the handler and the sender's transport

    def __init__(self) -> None:
        self.plis: list[int] = []

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        raise AssertionError("aiortc must not decode a relayed stream")

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


class FakeCodec:
    def __init__(self, mime: str, pt: int) -> None:
        self.mimeType, self.payloadType = mime, pt


class FakeTransceiver:
    def __init__(self, kind: str, codecs: list[FakeCodec]) -> None:
        self.kind = kind
        self.sender, self.receiver = FakeSender(), FakeReceiver()
        self._codecs = codecs


class FakePc:
    def __init__(self) -> None:
        self.tracks: list[Any] = []

    def addTrack(self, track: Any) -> None:  # noqa: N802
        self.tracks.append(track)


async def until(check: Any, what: str) -> None:
    """Wait (2 s at most) for `check()`; the timeout names `what` did not happen."""
    try:
        async with asyncio.timeout(2):
            while not check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within 2 s") from None
