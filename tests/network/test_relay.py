"""The relay on real UDP sockets: what arrives is exactly what its log says it let through."""

from __future__ import annotations

import asyncio
import socket
import time

from lab.network.impairment import Impairment, Schedule
from lab.network.relay import Relay, Route, rtp_sequence

# Addresses of this test's own, outside the lab's 127.0.0.1-.6 and its port ranges.
RELAY, PHONE, PSTN = "127.0.0.61", "127.0.0.62", "127.0.0.63"
PHONE_PORT, PSTN_PORT = 46000, 47000


def rtp(seq: int) -> bytes:
    return (
        bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + b"\0\0\0\1" + b"x" * 160
    )


def bound(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def receive_all(sock: socket.socket, quiet: float = 0.3) -> list[tuple[float, bytes, tuple[str, int]]]:
    loop = asyncio.get_running_loop()
    got = []
    while True:
        try:
            data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), quiet)
        except TimeoutError:
            return got
        got.append((time.monotonic(), data, addr))


async def test_relay_forwards_both_ways_and_drops_what_its_log_says() -> None:
    to_phone = Impairment.parse("loss=10%,delay=20ms,seed=3")
    relay = await Relay(
        RELAY,
        [
            Route(PHONE, range(PHONE_PORT, PHONE_PORT + 2), "to-phone"),
            Route(PSTN, range(PSTN_PORT, PSTN_PORT + 2), "to-browser"),
        ],
        {"to-phone": Schedule(to_phone), "to-browser": Schedule(Impairment())},
    ).start()
    phone, pstn = bound(PHONE, PHONE_PORT), bound(PSTN, PSTN_PORT)
    try:
        sent_at = {}
        receiving = asyncio.ensure_future(receive_all(phone))
        for seq in range(300):
            sent_at[seq] = time.monotonic()
            pstn.sendto(rtp(seq), (RELAY, PHONE_PORT))  # the phone's port, on the relay's address
            await asyncio.sleep(0.002)
        got = await receiving
        received = [rtp_sequence(data) for _, data, _ in got]
        dropped = relay.counts["to-phone"].dropped_seqs
        assert 15 < len(dropped) < 45  # 10 % of 300
        assert sorted(received) == sorted(set(range(300)) - set(dropped))  # exactly the log's drops
        assert {addr for _, _, addr in got} == {(RELAY, PSTN_PORT)}  # from the relay, on the sender's port
        delays = sorted(t - sent_at[rtp_sequence(data)] for t, data, _ in got)  # type: ignore[index]
        assert 0.019 < delays[len(delays) // 2] < 0.030
        assert relay.summary()["to-phone"] == {
            "packets": 300,
            "dropped": len(dropped),
            "duplicated": 0,
            "delayed": 300 - len(dropped),
        }

        # The phone answers where the packets came from: back through the relay, unimpaired.
        phone.sendto(rtp(7), (RELAY, PSTN_PORT))
        ((_, data, addr),) = await receive_all(pstn)
        assert rtp_sequence(data) == 7 and addr == (RELAY, PHONE_PORT)
        assert relay.summary()["to-browser"]["packets"] == 1 and relay.unroutable == 0
    finally:
        relay.stop()
        phone.close()
        pstn.close()
