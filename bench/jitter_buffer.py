"""The aiortc audio jitter buffer's delay before and after a loss burst, with and without
the lab's bound; and what Opus in-band FEC buys at the same loss.

    .venv/bin/python bench/jitter_buffer.py [--seconds 60] [--burst 3] [--fec-loss 5]

Part 1 feeds one stream of 20 ms packets, in order, one lost burst of `--burst` packets at
10 s, to each buffer and measures how long every packet sat in it (in packet arrivals,
20 ms each): the median before the burst, the most around it, the median over the last
10 s. The reference, measured in the same run, is aiortc's JitterBuffer as aiortc builds
it for audio (capacity 16, prefetch 4); also as the lab ran it before (prefetch 1). It
also times `add()` per packet, against aiortc's.

Part 2 encodes the speech prompt with the lab's Opus encoder at several bitrates with and
without FEC, loses the same seeded `--fec-loss` % of packets, and decodes through the lab's
receive path (bounded jitter buffer, libopus with FEC/PLC): PESQ (P.862, 8 kHz) against
the same bitrate with no loss. Numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from lab.audio import RATE, ensure_prompts, pesq_nb, read_wav
from lab.codecs import OPUS, opus_packets, receive
from lab.config import LabConfig
from lab.jitterbuffer import BoundedJitterBuffer, release_delays
from lab.jitterspec import JitterBufferSpec

BURST_AT = 500  # packet: 10 s in


def buffers() -> dict[str, Callable[[], BoundedJitterBuffer | JitterBuffer]]:
    return {
        "aiortc (capacity 16, prefetch 4)": lambda: JitterBuffer(capacity=16, prefetch=4),
        "aiortc as the lab ran it (prefetch 1)": lambda: JitterBuffer(capacity=16, prefetch=1),
        **{
            f"lab bounded {spec}": (lambda s=spec: BoundedJitterBuffer(JitterBufferSpec.parse(s)))
            for spec in ("fixed:20", "fixed:60", "adaptive:20-120")
        },
    }


def stream(count: int, lost: range) -> list[RtpPacket]:
    packets = []
    for i in range(count):
        if i not in lost:
            packet = RtpPacket(111, sequence_number=i % 65536, timestamp=i * 960, payload=b"\0" * 60)
            packet._data = packet.payload  # type: ignore[attr-defined]  # aiortc's receiver sets it
            packets.append(packet)
    return packets


def delays(args: argparse.Namespace) -> None:
    count = args.seconds * 50
    packets = stream(count, range(BURST_AT, BURST_AT + args.burst))
    print(f"{count} packets (20 ms), {args.burst} lost at {BURST_AT * 20 / 1000:g} s")
    print(f"{'buffer':<40} {'before ms':>9} {'burst max':>9} {'after ms':>8} {'played':>7} {'us/add':>7}")
    reference: tuple[float, float] | None = None
    for name, make in buffers().items():
        releases = release_delays(make(), packets)
        before = statistics.median(r.delay_ms for r in releases if r.timestamp < (BURST_AT - 1) * 960)
        near = [r.delay_ms for r in releases if BURST_AT * 960 <= r.timestamp < (BURST_AT + 50) * 960]
        after = statistics.median(r.delay_ms for r in releases if r.timestamp >= (count - 500) * 960)
        t0 = time.perf_counter()
        for _ in range(3):
            buffer = make()
            for packet in packets:
                buffer.add(packet)
        us = (time.perf_counter() - t0) / (3 * len(packets)) * 1e6
        reference = reference or (after, us)
        worst = max(near, default=0)
        print(f"{name:<40} {before:>9.0f} {worst:>9.0f} {after:>8.0f} {len(releases):>7} {us:>7.1f}")
        print(
            f"{'':<40} after/before {after / max(1, before):.2f}, "
            f"after vs aiortc's {after / reference[0]:.2f}, add() time vs aiortc's {us / reference[1]:.2f}"
        )


def fec(args: argparse.Namespace) -> None:
    prompt, _ = read_wav(ensure_prompts(LabConfig().prompts_dir)["browser"])
    loops = np.tile(prompt, 3)
    loss = args.fec_loss / 100
    print(f"\nOpus, the browser prompt x3, {args.fec_loss:g} % of packets lost (seed 7); PESQ nb")
    print(f"{'kbit/s':>6} {'no loss':>8} {'no loss, FEC':>13} {'PLC only':>9} {'FEC':>6} {'FEC gain':>9}")
    for bitrate in (16000, 24000, 32000, 64000):
        scores = []
        for fec_on, lost in ((False, 0.0), (True, 0.0), (False, loss), (True, loss)):
            sent = opus_packets(loops, RATE, bitrate, fec_on)
            kept = np.random.default_rng(7).random(len(sent)) >= lost
            heard, _ = receive([p for p, k in zip(sent, kept, strict=True) if k], OPUS, RATE)
            scores.append(pesq_nb(prompt, heard))
        clean, clean_fec, plc, rebuilt = scores
        row = f"{bitrate // 1000:>6} {clean:>8.2f} {clean_fec:>13.2f} {plc:>9.2f} {rebuilt:>6.2f}"
        print(f"{row} {rebuilt - plc:>+9.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--burst", type=int, default=3, help="packets lost in a row")
    p.add_argument("--fec-loss", type=float, default=5.0, help="percent of packets lost for the FEC part")
    args = p.parse_args()
    delays(args)
    fec(args)


if __name__ == "__main__":
    main()
