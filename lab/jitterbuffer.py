"""The audio jitter buffer of the lab's aiortc receivers, with a delay that stays bounded.

aiortc's audio JitterBuffer plays a packet only once the one before it is in. A lost packet
never comes, so it waits until 16 packets are buffered, drops the gap and from then on
plays one packet per packet that arrives: the ~15 packets (300 ms) it gathered stay in it
for the rest of the call (aiortc issue #543; `bench/jitter_buffer.py` measures it).

This buffer plays a slot once `depth` later packets have arrived, whether the slot holds a
packet or is still empty (then the packet is declared lost): its delay is `depth` packets
before a loss and after it. It hands out every slot that became playable at once, and says
how many packets were declared lost before each frame, so the decoder can conceal them
(Opus FEC or PLC) and the audio keeps its timeline.

Fixed: `depth` never changes. Adaptive: a packet that arrives after its slot was played (it
was late, not lost) deepens the buffer by how late it was, up to the maximum; a second
without a late packet makes it one packet shallower, down to the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from lab.jitterspec import DEFAULT_SPEC, PACKET_MS, JitterBufferSpec

#: A sequence number this far from the expected one is a new stream (aiortc's MAX_MISORDER).
RESTART_DISTANCE = 100
CALM_PACKETS = 50  # a second without a late packet: an adaptive buffer gets shallower


class PlayedFrame(JitterFrame):
    """One packet's payload; `lost_before` packets were declared lost just before it."""

    def __init__(self, data: bytes, timestamp: int, lost_before: int) -> None:
        super().__init__(data, timestamp)
        self.lost_before = lost_before


class PlayedFrames(JitterFrame):
    """Every frame one arrival made playable, in order. aiortc's receiver takes one
    JitterFrame per packet and rewrites its timestamp; the frames inside keep theirs."""

    def __init__(self, frames: list[PlayedFrame]) -> None:
        super().__init__(frames[0].data, frames[0].timestamp)
        self.frames = frames


class BoundedJitterBuffer:
    """Drop-in for aiortc's audio JitterBuffer (same `add`), one packet per frame."""

    def __init__(self, spec: JitterBufferSpec = DEFAULT_SPEC) -> None:
        self.spec = spec
        self.depth = spec.min_ms // PACKET_MS  # packets
        self.lost = 0  # packets declared lost
        self.late = 0  # packets that came after their slot was played
        self._next: int | None = None  # the sequence number of the next slot to play
        self._held: dict[int, RtpPacket] = {}
        self._lost_pending = 0
        self._calm = 0

    @property
    def capacity(self) -> int:
        return self.spec.max_ms // PACKET_MS + 1

    @property
    def delay_ms(self) -> int:
        """What the buffer adds now: the packets it holds."""
        return len(self._held) * PACKET_MS

    def add(self, packet: RtpPacket) -> tuple[bool, PlayedFrames | None]:
        seq = packet.sequence_number
        if self._next is None:
            self._next = seq
        ahead = uint16_add(seq, -self._next)
        if ahead >= 0x8000:  # its slot was played already: late (or a duplicate)
            behind = 0x10000 - ahead
            if behind > RESTART_DISTANCE:
                return False, self._restart(packet)
            self._was_late(behind)
            return False, None
        if ahead > self.capacity + RESTART_DISTANCE:
            return False, self._restart(packet)
        self._held[seq] = packet
        self._calm += 1
        if self.spec.adaptive and self._calm >= CALM_PACKETS and self.depth > self.spec.min_ms // PACKET_MS:
            self.depth -= 1
            self._calm = 0
        return False, self._play(newest=seq)

    def _was_late(self, behind: int) -> None:
        self.late += 1
        self._calm = 0
        if self.spec.adaptive:
            self.depth = min(self.spec.max_ms // PACKET_MS, self.depth + behind)

    def _restart(self, packet: RtpPacket) -> PlayedFrames | None:
        """A new stream (the sender restarted): play what is held, start over at `packet`."""
        frames = [PlayedFrame(p.payload, p.timestamp, 0) for _, p in sorted(self._held.items())]
        self._held.clear()
        self._next, self._lost_pending = None, 0
        _, more = self.add(packet)
        frames += more.frames if more is not None else []
        return PlayedFrames(frames) if frames else None

    def _play(self, newest: int) -> PlayedFrames | None:
        assert self._next is not None
        frames: list[PlayedFrame] = []
        while self.depth <= uint16_add(newest, -self._next) < 0x8000:
            packet = self._held.pop(self._next, None)
            self._next = uint16_add(self._next, 1)
            if packet is None:
                self.lost += 1
                self._lost_pending += 1
                continue
            frames.append(PlayedFrame(packet.payload, packet.timestamp, self._lost_pending))
            self._lost_pending = 0
        return PlayedFrames(frames) if frames else None


@dataclass(frozen=True)
class Release:
    timestamp: int  # the RTP timestamp of the packet played
    delay_ms: int  # how long it sat in the buffer, counted in packet arrivals (20 ms each)


def release_delays(buffer: BoundedJitterBuffer | JitterBuffer, packets: list[RtpPacket]) -> list[Release]:
    """Feed `packets` (arriving one every 20 ms, in list order) to `buffer` and say when
    each played packet came out: aiortc's JitterBuffer or the lab's, measured alike."""
    arrived: dict[int, int] = {}
    releases = []
    for i, packet in enumerate(packets):
        arrived.setdefault(packet.timestamp, i)
        _, out = buffer.add(packet)
        played = out.frames if isinstance(out, PlayedFrames) else [out] if out is not None else []
        releases += [Release(f.timestamp, (i - arrived[f.timestamp]) * PACKET_MS) for f in played]
    return releases
