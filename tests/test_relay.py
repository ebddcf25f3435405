"""lab.gateway.relay with real aiortc peers on loopback: a stream that has its DTLS transport
to itself (a passed-through call's audio) takes the SrtpShortcut once the handshake is done,
and the packets cross both ways through it, untouched but for the payload type and, toward
the browser, the SSRC. (The relay's own rules, with stand-ins for aiortc: test_passthrough.)"""

from __future__ import annotations

import asyncio
import logging
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from aiortc.rtp import RtpPacket

from lab import webrtc
from lab.gateway import relay
from lab.gateway.passthrough import AudioPassthrough
from lab.tasks import Tasks

PORTS = range(30000, 60000)
PCMU = 0
LOUDEST = bytes(160)  # u-law 0x00: -32124, which no silence decodes to


async def connect(browser: RTCPeerConnection, gateway: RTCPeerConnection, audio: AudioPassthrough) -> None:
    """The browser offers PCMU; the gateway answers with the relay on its transceiver."""
    browser.addTrack(AudioStreamTrack())  # silence, u-law 0xFF
    webrtc.prefer_codec(browser, "pcmu")
    await browser.setLocalDescription(await browser.createOffer())
    await gateway.setRemoteDescription(browser.localDescription)
    [transceiver] = gateway.getTransceivers()
    audio.attach(gateway, transceiver, ("PCMU",))
    await gateway.setLocalDescription(await gateway.createAnswer())
    audio.negotiated()
    await browser.setRemoteDescription(gateway.localDescription)


async def test_a_sole_stream_crosses_at_the_ice_socket_both_ways() -> None:
    webrtc.configure("127.0.0.1")
    browser, gateway = webrtc.peer_connection(), webrtc.peer_connection()
    far, far_rtcp = relay.bind_pair("127.0.0.1", PORTS)
    far.setblocking(False)
    audio = AudioPassthrough.open("127.0.0.1", PORTS, Tasks("test", logging.getLogger("test")))
    heard: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    browser.on("track", heard.put_nowait)
    loop = asyncio.get_running_loop()
    try:
        await audio.start(far.getsockname(), {"PCMU": PCMU})
        await connect(browser, gateway, audio)

        # browser -> SIP: the browser's own stream, decrypted at the ICE socket.
        packets = [RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(far, 2048), 5)) for _ in range(10)]
        assert audio.shortcut is not None, "the relay stayed on aiortc's way"
        [browser_ssrc] = {p.ssrc for p in packets}
        assert browser_ssrc == browser.getSenders()[0]._ssrc
        assert {p.payload_type for p in packets} == {PCMU}
        seqs = [p.sequence_number for p in packets]
        assert seqs == list(range(seqs[0], seqs[0] + 10))
        assert audio.shortcut.received >= 10

        # SIP -> browser: encrypted at the ICE socket, and aiortc in the browser decodes it.
        track = await asyncio.wait_for(heard.get(), 5)
        for seq in range(50):
            header = struct.pack("!BBHII", 0x80, PCMU, seq, 160 * seq, 0x5150)
            far.sendto(header + LOUDEST, ("127.0.0.1", audio.port))
            await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while True:  # the browser's jitter buffer plays silence until the far end's audio
                frame = await track.recv()
                if np.frombuffer(bytes(frame.planes[0]), np.int16).min() < -30000:
                    break
        assert audio.shortcut.sent == audio.counts.to_browser >= 1
    finally:
        audio.close()
        far.close(), far_rtcp.close()
        await browser.close()
        await gateway.close()


def test_an_aiortc_without_the_parts_it_needs_leaves_the_stream_on_aiortcs_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another aiortc or aioice may lack a private part the shortcut reads: the relay then
    stays on aiortc's way, and the gateway's log says which part was missing."""
    keys = {"_rx_srtp": None, "_tx_srtp": None, "_rtp_header_extensions_map": None}
    no_ice = SimpleNamespace(**keys)
    no_pair = SimpleNamespace(**keys, transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={})))
    with caplog.at_level(logging.WARNING, "gateway.relay"):
        assert relay.SrtpShortcut.take(no_ice, lambda packet: None) is None  # type: ignore[arg-type]
        assert "stays on aiortc's way (AttributeError" in caplog.text and "'transport'" in caplog.text
        assert relay.SrtpShortcut.take(no_pair, lambda packet: None) is None  # type: ignore[arg-type]
        assert "stays on aiortc's way (KeyError: 1)" in caplog.text
