"""One stream of a call relayed between the browser's SRTP leg (aiortc) and the SIP leg's plain
RTP, packet by packet, never decoded: a video call's video (lab.gateway.videorelay) and, when
both legs carry one G.711 codec, the audio (lab.gateway.passthrough).

The gateway owns such a stream itself: a UDP pair (RTP, RTCP) on its own address, which the
SIP side's SDP names instead of a pjsua stream's. Both ends agreed on the codecs, so a packet
only changes its payload type (each leg numbers a codec its own way) and, toward the browser,
its SSRC (the one the gateway's answer announced, which the browser routes by). A payload
type the other leg did not agree on is not passed on.

aiortc has no API for RTP in and out: the relay takes the receiver's packets from its
_handle_rtp_packet (so aiortc never decodes them) and sends through the DTLS transport's
_send_rtp (aiortc 1.16). A stream that has its transport to itself (a passed-through call's
audio) goes further once the DTLS handshake is done: SrtpShortcut reads and writes its SRTP
at the ICE socket, past aiortc's and aioice's layers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import pylibsrtp
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from lab.tasks import Tasks
from lab.webrtc import encoding

log = logging.getLogger("gateway.relay")

MAX_QUEUED = 200  # packets toward the browser; a stalled DTLS leg drops the oldest


def rewrite(data: bytes, payload_type: int, ssrc: int | None = None) -> bytes:
    """An RTP packet with another payload type (its marker kept) and, given one, another SSRC."""
    if len(data) < 12 or data[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    head = bytes([data[0], (data[1] & 0x80) | payload_type]) + data[2:8]
    return head + (struct.pack("!I", ssrc) if ssrc is not None else data[8:12]) + data[12:]


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 8 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


def bind_pair(host: str, ports: range, kind: str = "video") -> tuple[socket.socket, socket.socket]:
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
    raise OSError(f"no free RTP port pair for {kind} on {host} in {ports.start}-{ports.stop - 1}")


class SentByTheRelay(MediaStreamTrack):
    """The gateway's sender's track: it yields no frame, so aiortc encodes nothing; the sender
    exists for its SSRC and its place in the answer (sendrecv)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.Future()  # never: the relay sends the far end's packets itself


@dataclass
class Counts:
    to_sip: int = 0
    from_sip: int = 0  # every RTP packet the SIP end sent, passed on or not
    to_browser: int = 0
    dropped: int = 0

    def describe(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


class SrtpShortcut:
    """The browser leg of a DTLS transport that carries one relayed stream, read and written
    at its ICE socket. On aiortc's way a packet in goes through aioice's STUN parse (tried on
    every datagram) and queue, the DTLS transport's receive task and its RTP router, and a
    packet out through three coroutines: the relay cost twice a bare relay's CPU per packet
    (bench/relay_floor.py). The shortcut takes SRTP-protected RTP only, with the transport's
    own SRTP sessions (so replay checks and rollover counters stay one); STUN (ICE consent),
    DTLS and RTCP still go to aiortc. It needs the private parts of aiortc 1.16 and aioice
    0.13 it names; take() says which one it missed, and the relay then stays on aiortc's way."""

    def __init__(self, dtls: RTCDtlsTransport, on_packet: Callable[[RtpPacket], None]) -> None:
        self._rx: pylibsrtp.Session = dtls._rx_srtp
        self._tx: pylibsrtp.Session = dtls._tx_srtp
        self._extensions = dtls._rtp_header_extensions_map
        self._connection = dtls.transport._connection
        self._protocol = self._connection._nominated[1].protocol  # the nominated pair's socket
        self._through_aiortc = self._protocol.datagram_received
        self._on_packet = on_packet
        self.received = self.sent = 0
        self._protocol.datagram_received = self._datagram_received  # type: ignore[method-assign, assignment]

    @classmethod
    def take(cls, dtls: RTCDtlsTransport, on_packet: Callable[[RtpPacket], None]) -> SrtpShortcut | None:
        try:
            return cls(dtls, on_packet)
        except (AttributeError, KeyError) as exc:
            log.warning("relay: the browser leg stays on aiortc's way (%s: %s)", type(exc).__name__, exc)
            return None

    def _datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) < 12 or not 128 <= data[0] < 192 or is_rtcp(data):
            self._through_aiortc(data, addr)  # STUN, DTLS, SRTCP
            return
        try:
            packet = RtpPacket.parse(self._rx.unprotect(data), self._extensions)
        except (pylibsrtp.Error, ValueError):
            return  # replayed, forged or malformed: dropped, as aiortc drops it
        self.received += 1
        try:
            self._on_packet(packet)
        except Exception:  # raised into asyncio it would close the ICE socket (a fatal read error)
            log.exception("relay: a packet from the browser")

    def send(self, data: bytes) -> bool:
        """An RTP packet toward the browser; False when ICE has no pair any more."""
        pair = self._connection._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return False
        pair.protocol.transport.sendto(self._tx.protect(data), pair.remote_addr)
        self.sent += 1
        return True

    def close(self) -> None:
        vars(self._protocol).pop("datagram_received", None)  # the class's method again

    def describe(self) -> str:
        return f"browser leg at its ICE socket: {self.received} in, {self.sent} out"


class RtpRelay:
    """One stream of one call, between the browser's transceiver and the SIP far end. A kind
    of stream adds what it does beyond relaying in the on_* hooks."""

    kind: ClassVar[str]
    #: the stream has its browser transport to itself (no other stream is bundled on it), so
    #: it can take the SrtpShortcut
    sole_stream: ClassVar[bool] = False

    def __init__(self, rtp: socket.socket, rtcp: socket.socket, tasks: Tasks) -> None:
        self.rtp, self.rtcp, self.tasks = rtp, rtcp, tasks
        self.counts = self.new_counts()
        self.far: tuple[str, int] | None = None  # the SIP end's RTP address (RTCP: the next port)
        self.transceiver: RTCRtpTransceiver | None = None
        self.browser_ssrc: int | None = None  # the browser's, from its first packet
        self.sip_ssrc: int | None = None  # the SIP end's, from its first packet
        self._encodings: tuple[str, ...] = ()
        self._sip_pts: dict[str, int] = {}  # encoding -> the SIP leg's payload type
        self._to_sip: dict[int, int] = {}  # browser payload type -> SIP's
        self._to_browser: dict[int, int] = {}
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUED)
        self._pump_task: asyncio.Task[None] | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self.shortcut: SrtpShortcut | None = None

    @classmethod
    def open(cls, host: str, ports: range, tasks: Tasks) -> Self:
        rtp, rtcp = bind_pair(host, ports, cls.kind)
        return cls(rtp, rtcp, tasks)

    def new_counts(self) -> Counts:
        return Counts()

    @property
    def port(self) -> int:
        return int(self.rtp.getsockname()[1])

    async def start(self, far: tuple[str, int], sip_pts: Mapping[str, int]) -> None:
        """Relay to and from the SIP end at `far`, which numbers its codecs `sip_pts`
        (encoding name -> payload type, from its SDP)."""
        self.far, self._sip_pts = far, {name.lower(): pt for name, pt in sip_pts.items()}
        self._pair_payload_types()
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(lambda: _Socket(self._from_sip), sock=self.rtp)
        rtcp, _ = await loop.create_datagram_endpoint(lambda: _Socket(self.on_sip_rtcp), sock=self.rtcp)
        self._transports += [rtp, rtcp]

    def attach(
        self, pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, encodings: tuple[str, ...]
    ) -> None:
        """Take over the browser's transceiver (before the answer is created): it sends and
        receives the first codec of each of `encodings` only, and aiortc decodes and encodes nothing of it."""
        self.transceiver, self._encodings = transceiver, tuple(e.lower() for e in encodings)
        # The answer names those codecs only. aiortc chose the common codecs when the offer
        # was set (setCodecPreferences would only apply to the next negotiation).
        first: dict[str, Any] = {}
        for codec in transceiver._codecs:
            first.setdefault(encoding(codec.mimeType), codec)
        transceiver._codecs = [first[e] for e in self._encodings if e in first]
        pc.addTrack(SentByTheRelay(self.kind))  # aiortc gives it the browser's transceiver
        transceiver.receiver._handle_rtp_packet = self._from_browser  # type: ignore[method-assign]
        self._pump_task = self.tasks.start(self._pump(), f"{self.kind} relay toward the browser")
        dtls = transceiver.receiver.transport
        if self.sole_stream and dtls is not None:
            dtls.on("statechange", lambda: self._take_shortcut(dtls))

    def _take_shortcut(self, dtls: RTCDtlsTransport) -> None:
        if dtls.state == "connected" and self.shortcut is None:
            self.shortcut = SrtpShortcut.take(dtls, self.relay_browser_packet)

    def negotiated(self) -> None:
        """Once the gateway's answer is set: the browser leg's payload types."""
        self._pair_payload_types()

    def _pair_payload_types(self) -> None:
        if self.transceiver is None:
            return
        browser = {encoding(c.mimeType): c.payloadType for c in self.transceiver._codecs}
        self._to_sip, self._to_browser = {}, {}
        for name in self._encodings:
            sip_pt = self._sip_pts.get(self.sip_encoding(name))
            browser_pt = browser.get(name)
            if browser_pt is not None and sip_pt is not None:
                self._to_sip[browser_pt], self._to_browser[sip_pt] = sip_pt, browser_pt

    def sip_encoding(self, browser_encoding: str) -> str:
        """The SIP leg's codec (encoding name) that carries what the browser leg carries in
        `browser_encoding`: the same, unless the stream transcodes."""
        return browser_encoding

    # browser -> SIP ------------------------------------------------------------------
    async def _from_browser(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        self.relay_browser_packet(packet)

    def relay_browser_packet(self, packet: RtpPacket) -> None:
        sip_pt = self._to_sip.get(packet.payload_type)
        if sip_pt is None or self.far is None:
            return  # RTX, a codec the SIP end did not take, or the SIP end is not there yet
        if self.browser_ssrc is None:
            self.browser_ssrc = packet.ssrc
        packet.payload_type = sip_pt
        self.send_to_sip(packet)
        self.on_browser_packet(packet)

    def send_to_sip(self, packet: RtpPacket) -> None:
        if self.far is not None:
            self.rtp.sendto(packet.serialize(), self.far)  # header extensions are the browser leg's
            self.counts.to_sip += 1

    # SIP -> browser ------------------------------------------------------------------
    def _from_sip(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data) or len(data) < 12:
            return
        self.counts.from_sip += 1
        if self.sip_ssrc is None:
            self.sip_ssrc = struct.unpack("!I", data[8:12])[0]
        self.on_sip_packet(data)
        browser_pt = self._to_browser.get(data[1] & 0x7F)
        if self.transceiver is None or browser_pt is None:
            return  # before the browser's answer, or a payload type the browser did not take
        out = self.for_browser(data, browser_pt)
        if out is None:
            return
        if self.shortcut is not None:
            if self.shortcut.send(out):
                self._delivered()
            else:
                self.counts.dropped += 1
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.counts.dropped += 1
        self._queue.put_nowait(out)

    async def _pump(self) -> None:
        assert self.transceiver is not None
        transport = self.transceiver.sender.transport
        send: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        while True:
            data = await self._queue.get()
            if transport.state != "connected":
                self.counts.dropped += 1
                continue
            await send(data)
            self._delivered()

    def _delivered(self) -> None:
        self.counts.to_browser += 1
        if self.counts.to_browser == 1:
            self.on_first_delivery()

    def for_browser(self, data: bytes, browser_pt: int) -> bytes | None:
        """The SIP end's RTP packet as the browser gets it (None: nothing goes): its payload
        type the browser leg's, its SSRC the gateway's sender's."""
        assert self.transceiver is not None
        return rewrite(data, browser_pt, self.transceiver.sender._ssrc)

    # what a kind of stream adds --------------------------------------------------------
    def on_browser_packet(self, packet: RtpPacket) -> None:
        """A packet of the browser's, just sent on to the SIP end."""

    def on_sip_packet(self, data: bytes) -> None:
        """An RTP packet of the SIP end's, before it is passed on."""

    def on_sip_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        """An RTCP packet from the SIP end: read, never passed on (each leg reports its own)."""

    def on_first_delivery(self) -> None:
        """The first packet of the SIP end's reached the browser."""

    def close(self) -> None:
        self.far = None  # what the browser still sends goes nowhere (its socket is gone)
        if self._pump_task is not None:
            self._pump_task.cancel()
        for transport in self._transports:
            transport.close()
        if not self._transports:
            self.rtp.close()
            self.rtcp.close()
        self._transports = []
        way = "through aiortc"
        if self.shortcut is not None:
            self.shortcut.close()
            way = self.shortcut.describe()
        log.info("%s relay closed: %s (%s)", self.kind, self.counts.describe(), way)
