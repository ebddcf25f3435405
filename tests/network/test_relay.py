"""The relay on real UDP sockets: what arrives is exactly what its log says it let through."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from lab.network.impairment import Impairment
from lab.network.relay import KEEP_CALLS, JoinRefused, Relay, rtp_sequence

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
    relay = Relay(RELAY)
    # The offerer joins with the impairment, the answerer with its ports only.
    await relay.join("c1", PSTN, [PSTN_PORT, PSTN_PORT + 1], "to-browser", {"to-phone": to_phone})
    await relay.join("c1", PHONE, [PHONE_PORT, PHONE_PORT + 1], "to-phone")
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
        dropped = relay.summary("c1")["to-phone"]["dropped_seqs"]
        assert isinstance(dropped, list) and 15 < len(dropped) < 45  # 10 % of 300
        assert sorted(received) == sorted(set(range(300)) - set(dropped))  # exactly the log's drops
        assert {addr for _, _, addr in got} == {(RELAY, PSTN_PORT)}  # from the relay, on the sender's port
        delays = sorted(t - sent_at[rtp_sequence(data)] for t, data, _ in got)  # type: ignore[index]
        assert 0.019 < delays[len(delays) // 2] < 0.030
        assert relay.summary("c1")["to-phone"] == {
            "packets": 300,
            "dropped": len(dropped),
            "duplicated": 0,
            "delayed": 300 - len(dropped),
            "dropped_seqs": dropped,
            "duplicated_seqs": [],
        }

        # The phone answers where the packets came from: back through the relay, unimpaired.
        phone.sendto(rtp(7), (RELAY, PSTN_PORT))
        ((_, data, addr),) = await receive_all(pstn)
        assert rtp_sequence(data) == 7 and addr == (RELAY, PHONE_PORT)
        assert relay.summary("c1")["to-browser"]["packets"] == 1 and relay.unroutable == 0
    finally:
        relay.stop()
        phone.close()
        pstn.close()


async def test_a_port_is_never_taken_from_another_party_and_a_new_call_takes_over_its_owners() -> None:
    relay = Relay(RELAY)
    try:
        await relay.join("c1", PSTN, [PSTN_PORT], "to-browser", {"to-phone": Impairment(loss=0.5)})
        with pytest.raises(JoinRefused, match=f"port {PSTN_PORT} is mirrored for {PSTN}"):
            await relay.join("c2", PHONE, [PSTN_PORT], "to-phone")
        await relay.join("c2", PSTN, [PSTN_PORT], "to-browser")  # the PSTN gateway reuses its port
        assert relay.routes[PSTN_PORT].call == "c2"
        assert relay.calls["c2"].schedules == {}  # c2 asked for nothing: a perfect network
        assert relay.summary("c3") == {}
    finally:
        relay.stop()


async def test_the_oldest_calls_are_forgotten_with_their_ports() -> None:
    relay = Relay(RELAY)
    try:
        for i in range(KEEP_CALLS + 2):
            await relay.join(f"c{i}", PHONE, [PHONE_PORT + i], "to-phone")
        assert len(relay.calls) == KEEP_CALLS and "c0" not in relay.calls and "c1" not in relay.calls
        assert PHONE_PORT not in relay.routes and PHONE_PORT + 1 not in relay.routes
        bound(RELAY, PHONE_PORT).close()  # its mirror was closed: the port is free again
        assert relay.routes[PHONE_PORT + 2].call == "c2"
    finally:
        relay.stop()
