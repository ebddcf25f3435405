"""How long a receiver waits for a missing audio packet: `fixed:MS` or `adaptive:MIN-MAX`.

One definition for the lab's two kinds of receivers: the aiortc ones on the browser leg
(lab.jitterbuffer, per call) and pjsua2's on the SIP legs (lab.sip.endpoint, per party:
pjsua2 sets its jitter buffer per endpoint, not per call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PACKET_MS = 20  # the lab's audio packets (aiortc's encoders and the SIP side: 20 ms)
MAX_MS = 1000

_SPEC_RE = re.compile(r"(fixed):(\d+)|(adaptive):(\d+)-(\d+)")


@dataclass(frozen=True)
class JitterBufferSpec:
    """How long the lab's aiortc audio receivers wait for a missing packet.

    `fixed:MS` always waits MS; `adaptive:MIN-MAX` starts at MIN and follows the late
    packets it sees, up to MAX. Multiples of the 20 ms packet; 0 plays every packet the
    moment it arrives and takes any gap for a loss.
    """

    adaptive: bool = False
    min_ms: int = PACKET_MS
    max_ms: int = PACKET_MS

    def __post_init__(self) -> None:
        for ms in (self.min_ms, self.max_ms):
            if ms % PACKET_MS or not 0 <= ms <= MAX_MS:
                raise ValueError(
                    f"jitter buffer {self}: {ms} ms is not a multiple of {PACKET_MS} ms from 0 to {MAX_MS}"
                )
        if self.min_ms > self.max_ms:
            raise ValueError(f"jitter buffer: min {self.min_ms} ms is above max {self.max_ms} ms")
        if not self.adaptive and self.min_ms != self.max_ms:
            raise ValueError("a fixed jitter buffer has one size: min and max are equal")

    @classmethod
    def parse(cls, text: str) -> JitterBufferSpec:
        """`fixed:MS` or `adaptive:MIN-MAX` (milliseconds); raises ValueError saying so."""
        match = _SPEC_RE.fullmatch(text.strip().lower())
        if match is None:
            raise ValueError(f"jitter buffer {text!r}: write fixed:MS or adaptive:MIN-MAX, e.g. fixed:20")
        if match[1]:
            return cls(adaptive=False, min_ms=int(match[2]), max_ms=int(match[2]))
        return cls(adaptive=True, min_ms=int(match[4]), max_ms=int(match[5]))

    def __str__(self) -> str:
        return f"adaptive:{self.min_ms}-{self.max_ms}" if self.adaptive else f"fixed:{self.min_ms}"


#: No hold while packets come in order, deepening only when one comes after its slot was
#: played: this buffer counts packets, not time, so a packet late but in order plays at
#: once anyway, and a process running late on a busy machine only delivers a burst (the
#: gateway's PcmFifo and the client's recording take it). Holding one packet (20 ms more on
#: each browser leg, as aiortc's prefetch of 1 did) bought nothing on loopback, where UDP
#: keeps its order (bench/hops.py). fixed:20 takes a late packet for lost: with two busy
#: cores the phone heard gaps in one call of four.
DEFAULT_SPEC = JitterBufferSpec(adaptive=True, min_ms=0, max_ms=200)
