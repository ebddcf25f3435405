"""lab.gateway.opusrelay between a stand-in for aiortc's audio transceiver and a SIP end that
is a UDP socket pair: real Opus (the lab's encoder, libopus) and G.711 both ways, a lost
and a late packet of the browser's, the browser's digits; the real calls: test_call_path
and every default call of the suite."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiortc.rtp import RtpPacket
from aiortc_fakes import SENDER_SSRC, FakeCodec, FakePc, FakeTransceiver, until

from lab import g711
from lab.codecs import OPUS_PT, OpusDecoder, opus_packets
from lab.gateway import relay
from lab.gateway.opusrelay import OpusRelay
from lab.gateway.passthrough import digit_packets
from lab.tasks import Tasks

PORTS = range(30000, 60000)
BROWSER_EVENT, SIP_PCMU, SIP_PCMA, SIP_EVENT = 126, 0, 8, 101
BROWSER_SSRC, SIP_SSRC = 0x2222, 0x3333
RATE = 8000


def speech_like(seconds: float) -> np.ndarray:
    """A tone gliding 300-1200 Hz, at 8 kHz: a lag shows as a poor correlation."""
    t = np.arange(int(RATE * seconds)) / RATE
    return 0.4 * np.sin(2 * np.pi * (300 * t + 450 * t**2 / seconds))


def correlation_at_best_lag(source: np.ndarray, heard: np.ndarray, max_lag: int = 160) -> tuple[float, int]:
    """The waveforms' Pearson correlation at the lag (samples, up to `max_lag`: 20 ms) that
    gives the best one: the codecs' own delay is a few ms."""
    n = min(len(source), len(heard)) - max_lag
    scores = [float(np.corrcoef(source[:n], heard[lag : lag + n])[0, 1]) for lag in range(max_lag)]
    best = int(np.argmax(scores))
    return scores[best], best


@pytest.fixture
async def wired() -> AsyncIterator[tuple[OpusRelay, FakeTransceiver, socket.socket]]:
    """The relay, its browser transceiver, and the SIP end's RTP socket (PCMU answered)."""
    sip_rtp, sip_rtcp = relay.bind_pair("127.0.0.1", PORTS)
    sip_rtp.setblocking(False)
    audio = OpusRelay.open("127.0.0.1", PORTS, Tasks("test", logging.getLogger("test")))
    transceiver = FakeTransceiver(
        "audio",
        [
            FakeCodec("audio/opus", OPUS_PT),
            FakeCodec("audio/PCMU", 0),
            FakeCodec("audio/telephone-event", BROWSER_EVENT),
        ],
    )
    try:
        await audio.start(
            sip_rtp.getsockname(), {"pcmu": SIP_PCMU, "pcma": SIP_PCMA, "telephone-event": SIP_EVENT}
        )
        audio.attach(FakePc(), transceiver, audio.browser_encodings)  # type: ignore[arg-type]
        audio.negotiated()
        yield audio, transceiver, sip_rtp
    finally:
        audio.close()
        sip_rtp.close(), sip_rtcp.close()


async def from_relay(sip_rtp: socket.socket) -> RtpPacket:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sip_rtp, 2048), 2)
    return RtpPacket.parse(data)


async def test_the_browsers_opus_reaches_the_sip_end_as_g711_of_the_gateways_own_stream(
    wired: tuple[OpusRelay, FakeTransceiver, socket.socket],
) -> None:
    audio, transceiver, sip_rtp = wired
    assert audio.codec == "PCMU"  # the far end's first G.711
    # The answer names Opus and its telephone-event only.
    assert [c.mimeType for c in transceiver._codecs] == ["audio/opus", "audio/telephone-event"]
    source = speech_like(2.0)
    packets = opus_packets(source, RATE, 32000, fec=True)
    receive = transceiver.receiver._handle_rtp_packet
    lost = {20, 21}
    sent = [p for i, p in enumerate(packets) if i not in lost]
    sent.insert(40, packets[30])  # late: its place was decoded already
    for packet in sent:
        packet.ssrc = BROWSER_SSRC
        await receive(packet, 0)
    out = [await from_relay(sip_rtp) for _ in range(len(packets))]
    assert {p.payload_type for p in out} == {SIP_PCMU} and {p.ssrc for p in out} != {BROWSER_SSRC}
    assert len({p.ssrc for p in out}) == 1
    seqs = [p.sequence_number for p in out]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(packets))]  # the lost ones filled, no gap
    assert np.all(np.diff([p.timestamp for p in out]) == 160)  # 20 ms at 8 kHz each
    counts = audio.counts.describe()
    assert (counts["to_sip"], counts["concealed"], counts["late"]) == (len(packets), 2, 1)
    heard = np.concatenate([g711.decode("pcmu", p.payload) for p in out]).astype(np.float32) / 32768
    correlation, lag = correlation_at_best_lag(source, heard)
    assert correlation > 0.9, (correlation, lag)  # the same audio, in its place


async def test_the_sip_ends_g711_reaches_the_browser_as_opus_on_its_48_khz_clock(
    wired: tuple[OpusRelay, FakeTransceiver, socket.socket],
) -> None:
    audio, transceiver, sip_rtp = wired
    source = (speech_like(1.0) * 32767).astype(np.int16)
    for i in range(len(source) // 160):
        payload = g711.encode("pcmu", source[i * 160 : (i + 1) * 160])
        packet = RtpPacket(
            payload_type=SIP_PCMU,
            sequence_number=500 + i,
            timestamp=7000 + 160 * i,
            ssrc=SIP_SSRC,
            payload=payload,
        )
        sip_rtp.sendto(packet.serialize(), ("127.0.0.1", audio.port))
    sent = transceiver.sender.transport.sent
    await until(lambda: len(sent) == len(source) // 160, "50 packets toward the browser")
    packets = [RtpPacket.parse(data) for data in sent]
    assert {(p.payload_type, p.ssrc) for p in packets} == {(OPUS_PT, SENDER_SSRC)}
    assert [p.sequence_number for p in packets] == list(range(500, 550))
    assert [p.timestamp for p in packets] == [6 * (7000 + 160 * i) for i in range(50)]
    decoder = OpusDecoder(RATE)
    heard = np.concatenate([decoder.decode(p.payload) for p in packets]).astype(np.float32) / 32768
    correlation, lag = correlation_at_best_lag(source.astype(np.float32) / 32768, heard)
    assert correlation > 0.9, (correlation, lag)


async def test_the_browsers_digits_go_on_as_the_sip_legs_events(
    wired: tuple[OpusRelay, FakeTransceiver, socket.socket],
) -> None:
    audio, transceiver, sip_rtp = wired
    receive = transceiver.receiver._handle_rtp_packet
    packets = opus_packets(speech_like(1.0), RATE, 32000, fec=False)
    seq = 0
    for payload, first in digit_packets("7"):  # the browser's RTCDTMFSender, at 48 kHz
        event = RtpPacket(BROWSER_EVENT, marker=int(first), sequence_number=seq, timestamp=0, payload=payload)
        await receive(event, 0)
        seq += 1
    for packet in packets:  # its audio after the digit: the digit's events take its place
        packet.sequence_number, packet.ssrc = seq, BROWSER_SSRC
        seq += 1
        await receive(packet, 0)
    out = [await from_relay(sip_rtp) for _ in range(len(packets))]
    events = [p for p in out if p.payload_type == SIP_EVENT]
    assert [struct.unpack("!BBH", p.payload)[0] for p in events] == [7] * 8
    assert audio.counts.describe()["concealed"] == 0  # the event packets were no loss
