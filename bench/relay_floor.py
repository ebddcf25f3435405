"""The floor under a passed-through call's CPU on this machine: what a relay that does nothing
but wake for each packet costs, measured the way bench/peers.py measures the gateways.

    .venv/bin/python bench/relay_floor.py [--calls 1 4] [--seconds 15]

Three relays, each a process of its own on 127.0.0.1, fed by a third process that plays both
ends of N calls (one 20 ms packet each way per call, 100 packets a second a call):
  - "UDP": an asyncio relay that only passes datagrams on (recvfrom, sendto; no RTP parsed);
  - "SRTP": the same plus the browser leg's SRTP: it decrypts what the browser end sends and
    encrypts what it passes back, with pylibsrtp and aiortc's first SRTP profile;
  - "Opus": the same plus the Opus relay's codec work, with the lab's pieces: the browser
    end sends Opus (speech-like, 8 kHz, encoded once beforehand), which the relay decodes
    (libopus, to 8 kHz) and sends on as PCMU; the SIP end's PCMU it decodes and encodes to
    Opus (libopus) before the SRTP.
The SRTP relay is what calllab's passthrough does per packet, minus aiortc's and aioice's
layers in between (lab/gateway/relay.py); Janus (bench/peers.py) does it in C. The Opus one
is what the Opus relay does (lab/gateway/opusrelay.py), the same way. Prints each relay's
CPU per call above its idle, as a share of one core. Numbers, not verdicts: on a machine
where waking for a packet is dear, no per-packet relay gets below these.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import cast

import numpy as np
from aiortc.rtcdtlstransport import SRTP_PROFILES
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from lab import g711
from lab.codecs import OpusDecoder, PcmOpusEncoder
from lab.load import cpu_seconds

HOST = "127.0.0.1"
PACKET_S = 0.02  # one G.711 frame
PAYLOAD = bytes(160)
MODES = ("udp", "srtp", "opus")
CODEC_RATE = 8000
OPUS_BITRATE = 32000
SETTLE_S = 1.0  # s of feeding before the CPU window opens
PROFILE = SRTP_PROFILES[0]
KEY = bytes(range(PROFILE.key_length + PROFILE.salt_length))  # a bench's key: both ends know it


def srtp(direction: int) -> Session:
    return Session(Policy(key=KEY, ssrc_type=direction, srtp_profile=PROFILE.libsrtp_profile))


def speech_like(packets: int) -> list[np.ndarray]:
    """20 ms frames at 8 kHz of a tone gliding 200-1000 Hz with noise: what the codecs get
    (libopus spends less on silence)."""
    rng = np.random.default_rng(7)
    t = np.arange(packets * 160) / CODEC_RATE
    tone = 0.3 * np.sin(2 * np.pi * (200 * t + 400 * t**2 / t[-1])) + 0.05 * rng.standard_normal(len(t))
    pcm = (tone * 32767).astype(np.int16)
    return [pcm[i * 160 : (i + 1) * 160] for i in range(packets)]


class Transcoder:
    """The Opus relay's codec work for one call, both ways."""

    def __init__(self) -> None:
        self.decoder = OpusDecoder(CODEC_RATE)
        self.encoder = PcmOpusEncoder(CODEC_RATE, OPUS_BITRATE, fec=False)

    def to_sip(self, rtp: bytes) -> bytes:
        return rtp[:12] + g711.encode("pcmu", self.decoder.decode(rtp[12:]))

    def to_browser(self, rtp: bytes) -> bytes:
        return rtp[:12] + self.encoder.encode(g711.decode("pcmu", rtp[12:]))


def relay(calls: int, mode: str) -> None:
    """Child: per call a browser-side and a SIP-side socket; each end's first packet says where
    it is (symmetric RTP). Prints the ports as one JSON line, then relays until killed."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        inbound, outbound = (
            (srtp(Policy.SSRC_ANY_INBOUND), srtp(Policy.SSRC_ANY_OUTBOUND)) if mode != "udp" else (None, None)
        )

        class Side(asyncio.DatagramProtocol):
            def __init__(self, decrypt: bool, transcoder: Transcoder | None) -> None:
                self.decrypt = decrypt
                self.transcoder = transcoder
                self.peer_addr: tuple[str, int] | None = None
                self.other: Side | None = None
                self.transport: asyncio.DatagramTransport | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.peer_addr = addr
                other = self.other
                if other is None or other.peer_addr is None or other.transport is None:
                    return
                if inbound is not None and outbound is not None and self.decrypt:
                    data = inbound.unprotect(data)
                    if self.transcoder is not None:
                        data = self.transcoder.to_sip(data)
                elif outbound is not None:
                    if self.transcoder is not None:
                        data = self.transcoder.to_browser(data)
                    data = outbound.protect(data)
                other.transport.sendto(data, other.peer_addr)

        async def bind(side: Side) -> int:
            transport, _ = await loop.create_datagram_endpoint(lambda: side, local_addr=(HOST, 0))
            return int(transport.get_extra_info("sockname")[1])

        ports: list[int] = []
        for _ in range(calls):
            transcoder = Transcoder() if mode == "opus" else None
            browser, sip = (
                Side(decrypt=True, transcoder=transcoder),
                Side(decrypt=False, transcoder=transcoder),
            )
            browser.other, sip.other = sip, browser
            ports += [await bind(browser), await bind(sip)]
        print(json.dumps(ports), flush=True)
        await asyncio.Future()

    asyncio.run(run())


def feed(ports: list[int], seconds: float, mode: str) -> None:
    """Child: both ends of every call, a packet each way every 20 ms, the ends' packets spread
    evenly over the 20 ms; what comes back is counted. Prints {"sent": n, "received": n} at the end."""
    encrypt = srtp(Policy.SSRC_ANY_OUTBOUND) if mode != "udp" else None
    frames = speech_like(50)  # a second, looped
    if mode == "opus":
        encoder = PcmOpusEncoder(CODEC_RATE, OPUS_BITRATE, fec=False)
        browser_payloads = [encoder.encode(frame) for frame in frames]
        sip_payloads = [g711.encode("pcmu", frame) for frame in frames]
    else:
        browser_payloads = sip_payloads = [PAYLOAD]
    ends = []
    for port in ports:
        end = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end.bind((HOST, 0))
        end.setblocking(False)
        ends.append((end, port))
    start = time.monotonic()
    seq = received = 0
    while (tick := start + seq * PACKET_S) - start < seconds:
        seq += 1
        for i, (end, port) in enumerate(ends):  # spread over the 20 ms, as calls' clocks are
            time.sleep(max(0.0, tick + i * PACKET_S / len(ends) - time.monotonic()))
            header = {"sequence_number": seq & 0xFFFF, "timestamp": seq * 160, "ssrc": 1000 + i}
            browser_end = i % 2 == 0  # the browser end of call i // 2
            payloads = browser_payloads if browser_end else sip_payloads
            packet = RtpPacket(payload_type=0, payload=payloads[seq % len(payloads)], **header).serialize()
            if encrypt is not None and browser_end:
                packet = encrypt.protect(packet)
            end.sendto(packet, (HOST, port))
            try:
                while end.recv(2048):
                    received += 1
            except BlockingIOError:
                pass
    print(json.dumps({"sent": seq * len(ends), "received": received}), flush=True)


def per_call_share(calls: int, seconds: float, mode: str) -> float:
    """One relay's (MODES) CPU per call above its idle, as a share of one core."""
    me = [sys.executable, __file__, "--calls", str(calls), "--mode", mode]
    relay_proc = subprocess.Popen([*me, "--child", "relay"], stdout=subprocess.PIPE, text=True)
    feeder = None
    try:
        assert relay_proc.stdout is not None
        ports = json.loads(relay_proc.stdout.readline())
        idle = share([relay_proc.pid], seconds / 3)
        feeder = subprocess.Popen(
            [*me, "--child", "feed", "--seconds", str(SETTLE_S + seconds + 0.5), "--ports", *map(str, ports)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(SETTLE_S)
        busy = share([relay_proc.pid], seconds)
        out, _ = feeder.communicate(timeout=10)
        counts = json.loads(out)
        if counts["received"] < 0.95 * counts["sent"]:  # the relay must have done its work
            raise RuntimeError(f"the relay passed on only {counts['received']} of {counts['sent']} packets")
        return (busy - idle) / calls
    finally:
        for proc in (feeder, relay_proc):
            if proc is not None:
                proc.kill()
                proc.wait()


def share(pids: list[int], window: float) -> float:
    """The processes' share of a core over the next `window` s (this thread sleeps meanwhile)."""
    before, t0 = cpu_seconds(*pids), time.monotonic()
    time.sleep(window)
    after, t1 = cpu_seconds(*pids), time.monotonic()
    if before is None or after is None:
        raise RuntimeError(f"a measured process (pids {pids}) ended during the CPU window")
    return (after - before) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4], help="calls at once, per step")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each CPU window")
    parser.add_argument("--rounds", type=int, default=3, help="windows per step and relay (median)")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("relay", "feed"), help=argparse.SUPPRESS)
    parser.add_argument("--ports", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "relay":
        relay(args.calls[0], args.mode)
        return
    if args.child == "feed":
        feed(args.ports, args.seconds, args.mode)
        return
    print(f"relay CPU % of a core per call above idle, median of {args.rounds} windows of {args.seconds:g} s")
    print(f"{'at once':>8} " + " ".join(f"{mode.upper():>7}" for mode in MODES))
    for calls in args.calls:
        row = [
            statistics.median(per_call_share(calls, args.seconds, mode) for _ in range(args.rounds))
            for mode in MODES
        ]
        print(f"{calls:>8} " + " ".join(f"{share * 100:7.2f}" for share in row), flush=True)


if __name__ == "__main__":
    main()
