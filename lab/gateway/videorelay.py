"""The gateway's video relay: a video call's RTP between the browser's SRTP leg (aiortc) and
the SIP leg's plain RTP (a SIP video phone), packet by packet, never decoded.

pjsua2's wheel has no video, so the gateway owns this stream itself: a UDP pair (RTP, RTCP)
on its own address that the SIP offer's video m-line names (lab.gateway.video.sip_offer).
Both ends agreed on one codec (the SIP answer's, which the browser offered), so a packet
only changes its payload type (each leg numbers the codec its own way) and, toward the
browser, its SSRC (the one the gateway's answer announced, which the browser routes by).
Keyframes: a PLI or FIR from either end is passed on as a PLI to the other, and one is
asked of each sender as soon as its packets can be delivered (what it sent before that,
its first keyframe included, was dropped).

aiortc has no API for RTP in and out: the relay takes the video receiver's packets from its
_handle_rtp_packet (so aiortc never decodes them), sends through the DTLS transport's
_send_rtp, and reads the sender's RTCP from its _handle_rtcp_packet (aiortc 1.16).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket

from lab.tasks import Tasks

log = logging.getLogger("gateway.video")

RTCP_PSFB_FIR = 4  # RFC 5104: Full Intra Request, as PLI asks for a keyframe
_RTCP_PSFB = 206
MAX_QUEUED = 200  # packets toward the browser; a stalled DTLS leg drops the oldest


def rewrite(data: bytes, payload_type: int, ssrc: int | None = None) -> bytes:
    """An RTP packet with another payload type (its marker kept) and, given one, another SSRC."""
    if len(data) < 12 or data[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    head = bytes([data[0], (data[1] & 0x80) | payload_type]) + data[2:8]
    return head + (struct.pack("!I", ssrc) if ssrc is not None else data[8:12]) + data[12:]


def asks_for_keyframe(packets: list[Any]) -> bool:
    """Whether RTCP packets (aiortc's, parsed) hold a PLI or a FIR."""
    return any(isinstance(p, RtcpPsfbPacket) and p.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR) for p in packets)


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 8 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


class _SentByTheRelay(MediaStreamTrack):
    """The gateway's video sender's track: it yields no frame, so aiortc encodes nothing; the
    sender exists for its SSRC and its place in the answer (sendrecv)."""

    kind = "video"

    async def recv(self) -> Any:
        await asyncio.Future()  # never: the relay sends the far end's packets itself


@dataclass
class Counts:
    to_sip: int = 0
    to_browser: int = 0
    keyframes_asked_of_sip: int = 0
    keyframes_asked_of_browser: int = 0
    dropped: int = 0

    def describe(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


def bind_pair(host: str, ports: range) -> tuple[socket.socket, socket.socket]:
    """An RTP socket on an even port of `ports` and the RTCP one on the next; OSError when
    every pair is taken."""
    for port in range(ports.start + ports.start % 2, ports.stop - 1, 2):
        rtp, rtcp = (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        )
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        return rtp, rtcp
    raise OSError(f"no free RTP port pair for video on {host} in {ports.start}-{ports.stop - 1}")


@dataclass
class VideoRelay:
    """One call's video, between `transceiver` (the browser's) and the SIP far end."""

    rtp: socket.socket
    rtcp: socket.socket
    tasks: Tasks
    counts: Counts = field(default_factory=Counts)
    _far: tuple[str, int] | None = None  # the SIP end's RTP address (RTCP: the next port)
    _sip_pt: int = 0
    _browser_pt: int = 0
    _browser_ssrc: int | None = None  # the browser's video SSRC, from its first packet
    _sip_ssrc: int | None = None  # the SIP end's, from its first packet
    _transceiver: RTCRtpTransceiver | None = None
    _mime: str = ""
    _pump_task: asyncio.Task[None] | None = None
    _queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))
    _transports: list[asyncio.DatagramTransport] = field(default_factory=list)
    _asked_browser: bool = False
    _asked_sip: bool = False

    @classmethod
    def open(cls, host: str, ports: range, tasks: Tasks) -> VideoRelay:
        rtp, rtcp = bind_pair(host, ports)
        return cls(rtp, rtcp, tasks)

    @property
    def port(self) -> int:
        return int(self.rtp.getsockname()[1])

    async def start(self, far: tuple[str, int], sip_pt: int) -> None:
        """Relay to and from the SIP end at `far`, which sends and takes `sip_pt`."""
        self._far, self._sip_pt = far, sip_pt
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(lambda: _Socket(self._from_sip), sock=self.rtp)
        rtcp, _ = await loop.create_datagram_endpoint(lambda: _Socket(self._rtcp_from_sip), sock=self.rtcp)
        self._transports += [rtp, rtcp]

    def attach(self, pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, codec: str) -> None:
        """Take over the browser's video transceiver (before the answer is created): it sends
        and receives `codec` only (the SIP end's), and aiortc decodes and encodes nothing of it."""
        self._transceiver, self._mime = transceiver, f"video/{codec}".lower()
        # The answer names that codec only. aiortc chose the common codecs when the offer was
        # set (setCodecPreferences would only apply to the next negotiation).
        transceiver._codecs = [c for c in transceiver._codecs if c.mimeType.lower() == self._mime][:1]
        pc.addTrack(_SentByTheRelay())  # aiortc gives it the browser's video transceiver
        receiver, sender = transceiver.receiver, transceiver.sender
        receiver._handle_rtp_packet = self._from_browser  # type: ignore[method-assign]
        original = sender._handle_rtcp_packet

        async def rtcp_for_sender(packet: Any) -> None:
            if asks_for_keyframe([packet]):
                self._ask_sip()
            await original(packet)

        sender._handle_rtcp_packet = rtcp_for_sender  # type: ignore[method-assign]
        self._pump_task = self.tasks.start(self._pump(), "video relay toward the browser")

    def negotiated(self) -> None:
        """Once the browser's answer is set: the browser leg's payload type of the codec."""
        assert self._transceiver is not None
        pts = [c.payloadType for c in self._transceiver._codecs if c.mimeType.lower() == self._mime]
        if pts and pts[0] is not None:
            self._browser_pt = pts[0]

    # browser -> SIP ------------------------------------------------------------------
    async def _from_browser(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        if packet.payload_type != self._browser_pt or self._far is None:
            return  # RTX, or the SIP end is not there yet
        if self._browser_ssrc is None:
            self._browser_ssrc = packet.ssrc
        packet.payload_type = self._sip_pt
        self.rtp.sendto(packet.serialize(), self._far)  # header extensions are the browser leg's
        self.counts.to_sip += 1
        if not self._asked_browser:
            self._asked_browser = True
            self._ask_browser()

    def _rtcp_from_sip(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            return
        if asks_for_keyframe(packets):
            self._ask_browser()

    def _ask_browser(self) -> None:
        if self._transceiver is None or self._browser_ssrc is None:
            return
        self.counts.keyframes_asked_of_browser += 1
        pli = self._transceiver.receiver._send_rtcp_pli(self._browser_ssrc)
        self.tasks.start(pli, "video relay: PLI to the browser", report=False)

    # SIP -> browser ------------------------------------------------------------------
    def _from_sip(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data) or len(data) < 12:
            return
        if self._sip_ssrc is None:
            self._sip_ssrc = struct.unpack("!I", data[8:12])[0]
        if self._transceiver is None or not self._browser_pt:
            return  # before the browser's answer: the PLI after the first delivered packet asks again
        if self._queue.full():
            self._queue.get_nowait()
            self.counts.dropped += 1
        self._queue.put_nowait(rewrite(data, self._browser_pt, self._transceiver.sender._ssrc))

    async def _pump(self) -> None:
        assert self._transceiver is not None
        transport = self._transceiver.sender.transport
        send: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        while True:
            data = await self._queue.get()
            if transport.state != "connected":
                self.counts.dropped += 1  # DTLS is not up yet: the PLI below asks again
                continue
            await send(data)
            self.counts.to_browser += 1
            if not self._asked_sip:
                self._asked_sip = True
                self._ask_sip()

    def _ask_sip(self) -> None:
        if self._far is None or self._sip_ssrc is None:
            return
        self.counts.keyframes_asked_of_sip += 1
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self._transceiver_ssrc(), media_ssrc=self._sip_ssrc)
        self.rtcp.sendto(bytes(pli), (self._far[0], self._far[1] + 1))

    def _transceiver_ssrc(self) -> int:
        return int(self._transceiver.sender._ssrc) if self._transceiver is not None else 0

    def close(self) -> None:
        self._far = None  # what the browser still sends goes nowhere (its socket is gone)
        if self._pump_task is not None:
            self._pump_task.cancel()
        for transport in self._transports:
            transport.close()
        if not self._transports:
            self.rtp.close()
            self.rtcp.close()
        self._transports = []
        log.info("video relay closed: %s", self.counts.describe())
