"""TCP byte streams from captured segments: each direction of a connection in sequence order,
retransmitted bytes once, cut where the capture lacks bytes.

A gap (bytes never captured, or a sequence number a corrupt packet made up) is never filled:
what follows it is a new run, as Wireshark dissects the segment after "previous segment not
captured" afresh. So the bytes held are the captured payload bytes, whatever the sequence
numbers say (filling a gap with zeros let one corrupt number allocate up to 4 GiB).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from lab.analysis.pcap import TcpSegment


@dataclass(frozen=True)
class ByteRun:
    """Bytes of one direction of a TCP connection that the capture holds without a gap."""

    src: str
    sport: int
    dst: str
    dport: int
    data: bytes
    offsets: tuple[int, ...]  # where each segment that added bytes starts in `data` (ascending)
    times: tuple[float, ...]  # its capture time
    frames: tuple[int, ...]  # its frame index

    def when(self, offset: int) -> tuple[float, int]:
        """Time and frame of the segment that carried the byte at `offset` (for a message:
        its last byte, where Wireshark shows the reassembled message)."""
        i = max(bisect.bisect_right(self.offsets, offset) - 1, 0)
        return self.times[i], self.frames[i]


def reassemble(segments: list[TcpSegment]) -> tuple[list[ByteRun], int]:
    """The runs of every direction of every connection (a direction's runs in sequence order),
    and how many segments were retransmissions (bytes already seen), left out."""
    flows: dict[tuple[str, int, str, int], list[TcpSegment]] = {}
    for seg in segments:
        flows.setdefault((seg.src, seg.sport, seg.dst, seg.dport), []).append(seg)
    runs: list[ByteRun] = []
    retransmitted = 0
    for key, segs in flows.items():
        flow_runs, again = _direction(key, segs)
        runs += flow_runs
        retransmitted += again
    return runs, retransmitted


def _direction(key: tuple[str, int, str, int], segments: list[TcpSegment]) -> tuple[list[ByteRun], int]:
    # Sequence numbers relative to the first segment captured, signed: a stream that wraps
    # past 2**32 stays in order, and so do segments captured out of order before it.
    base = segments[0].seq - (1 << 31)
    ordered = sorted(segments, key=lambda s: ((s.seq - base) % (1 << 32), s.frame))
    runs: list[ByteRun] = []
    retransmitted = 0
    data = bytearray()
    start = 0  # relative sequence number of data[0]
    offsets: list[int] = []
    times: list[float] = []
    frames: list[int] = []
    for seg in ordered:
        rel = (seg.seq - base) % (1 << 32) - start
        if offsets and rel + len(seg.payload) <= len(data):
            retransmitted += 1
            continue
        if offsets and rel > len(data):
            runs.append(ByteRun(*key, bytes(data), tuple(offsets), tuple(times), tuple(frames)))
            data, offsets, times, frames = bytearray(), [], [], []
        if not offsets:
            start, rel = start + rel, 0
        offsets.append(rel)
        times.append(seg.ts)
        frames.append(seg.frame)
        data += seg.payload[len(data) - rel :]
    runs.append(ByteRun(*key, bytes(data), tuple(offsets), tuple(times), tuple(frames)))
    return runs, retransmitted
