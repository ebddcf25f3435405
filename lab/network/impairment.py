"""What a network does to packets: loss (random or in bursts), delay, jitter, reordering,
duplication and a rate limit, as a seeded schedule that decides each packet's fate.

The schedule is a pure function of the seed and the packets it is shown (their arrival
times and sizes), so a run is repeatable packet for packet. Each packet consumes exactly
three random draws whatever happens to it, so the n-th packet's loss, jitter and
duplication draws do not depend on timing; only the rate limit does.

Definitions (the same names as the command line, `loss=5%,burst=3,delay=80ms,...`):
- loss: long-run fraction of packets lost. Without `burst`, each packet is lost
  independently (Bernoulli). With `burst` = B, losses follow the simple Gilbert model
  (Gilbert-Elliott with loss 0 in Good, 1 in Bad): P(Bad->Good) = r = 1/B, so bursts last
  B packets on average, and P(Good->Bad) = p = loss * r / (1 - loss), so p / (p + r) = loss.
- delay: fixed one-way delay added to every packet.
- jitter: each packet's delay is delay + U(-jitter, +jitter), never below 0. With
  `reorder=off` a packet is never delivered before the one sent ahead of it (its delay
  grows instead), as on a single FIFO link.
- dup: fraction of packets delivered twice (the copy 1 ms after the original).
- rate: a link of that many kbit/s: a packet waits for the ones ahead of it to be
  serialised (size * 8 / rate) before its own delay starts.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

DUPLICATE_GAP_S = 0.001


class ImpairmentError(ValueError):
    """A spec that cannot be applied; the message names the parameter and what is accepted."""


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.0  # fraction, 0..1
    burst: float | None = None  # mean burst length in packets (Gilbert); None: random loss
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: bool = True
    dup: float = 0.0  # fraction, 0..1
    rate_kbit: float | None = None  # None: unlimited
    seed: int = 0

    @property
    def is_perfect(self) -> bool:
        return self == Impairment(seed=self.seed)

    @classmethod
    def parse(cls, spec: str) -> Impairment:
        """`loss=5%,burst=3,delay=80ms,jitter=30ms,reorder=off,dup=0.5%,rate=64kbit,seed=7`"""
        fields: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep or key not in _PARSERS:
                raise ImpairmentError(
                    f"impairment {item!r}: expected NAME=VALUE with NAME one of {', '.join(_PARSERS)}"
                )
            name, parse = _PARSERS[key]
            fields[name] = parse(key, value.strip())
        return cls(**fields).checked()  # type: ignore[arg-type]

    def checked(self) -> Impairment:
        if not 0 <= self.loss < 1:
            raise ImpairmentError(f"loss={self.loss * 100:g}%: must be from 0% up to (not including) 100%")
        if not 0 <= self.dup <= 1:
            raise ImpairmentError(f"dup={self.dup * 100:g}%: must be from 0% to 100%")
        if self.burst is not None and self.burst < 1:
            raise ImpairmentError(f"burst={self.burst:g}: a mean burst length is 1 packet or more")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ImpairmentError("delay and jitter must be 0 ms or more")
        if self.rate_kbit is not None and self.rate_kbit <= 0:
            raise ImpairmentError(f"rate={self.rate_kbit:g}kbit: must be more than 0")
        return self

    def spec(self) -> str:
        """The command-line form, the inverse of parse()."""
        parts = []
        if self.loss:
            parts.append(f"loss={self.loss * 100:g}%")
        if self.burst is not None:
            parts.append(f"burst={self.burst:g}")
        if self.delay_ms:
            parts.append(f"delay={self.delay_ms:g}ms")
        if self.jitter_ms:
            parts.append(f"jitter={self.jitter_ms:g}ms")
        if not self.reorder:
            parts.append("reorder=off")
        if self.dup:
            parts.append(f"dup={self.dup * 100:g}%")
        if self.rate_kbit is not None:
            parts.append(f"rate={self.rate_kbit:g}kbit")
        parts.append(f"seed={self.seed}")
        return ",".join(parts)

    def reseeded(self, offset: int) -> Impairment:
        """The same network with its own random stream (the other direction of a leg)."""
        return dataclasses.replace(self, seed=self.seed + offset)


def _percent(key: str, value: str) -> float:
    number = value[:-1] if value.endswith("%") else value
    try:
        return float(number) / 100
    except ValueError:
        raise ImpairmentError(f"{key}={value}: expected a percentage such as 5% or 0.5%") from None


def _unit(unit: str) -> Callable[[str, str], float]:
    def parse(key: str, value: str) -> float:
        number = value[: -len(unit)] if value.lower().endswith(unit) else value
        try:
            return float(number)
        except ValueError:
            raise ImpairmentError(f"{key}={value}: expected a number of {unit}, such as 30{unit}") from None

    return parse


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ImpairmentError(f"{key}={value}: expected a number") from None


def _switch(key: str, value: str) -> bool:
    if value.lower() in ("on", "yes", "true", "1"):
        return True
    if value.lower() in ("off", "no", "false", "0"):
        return False
    raise ImpairmentError(f"{key}={value}: expected on or off")


def _seed(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ImpairmentError(f"{key}={value}: expected a whole number") from None


_PARSERS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "loss": ("loss", _percent),
    "burst": ("burst", _number),
    "delay": ("delay_ms", _unit("ms")),
    "jitter": ("jitter_ms", _unit("ms")),
    "reorder": ("reorder", _switch),
    "dup": ("dup", _percent),
    "rate": ("rate_kbit", _unit("kbit")),
    "seed": ("seed", _seed),
}


@dataclass(frozen=True)
class Fate:
    """What the network does with one packet: nothing delivered (dropped), or delivered at
    each of `deliveries` (seconds after it arrived; two of them for a duplicate)."""

    index: int
    dropped: bool
    deliveries: tuple[float, ...]


class Schedule:
    """One direction of an impaired link; `fate()` is called once per packet, in arrival order."""

    def __init__(self, impairment: Impairment) -> None:
        self.impairment = impairment.checked()
        self._random = random.Random(impairment.seed)
        self._bad = False  # Gilbert state
        self._index = 0
        self._link_free_at = float("-inf")  # rate limit: when the link finishes the last packet
        self._last_delivery = float("-inf")  # reorder=off: deliveries never go back in time

    def _lost(self, draw: float) -> bool:
        imp = self.impairment
        if imp.burst is None:
            return draw < imp.loss
        r = 1.0 / imp.burst
        p = imp.loss * r / (1.0 - imp.loss)
        self._bad = draw >= r if self._bad else draw < p
        return self._bad

    def fate(self, arrival: float, size: int) -> Fate:
        """The fate of a packet of `size` bytes that reaches the network at `arrival` (s)."""
        imp = self.impairment
        loss_draw, jitter_draw, dup_draw = self._random.random(), self._random.random(), self._random.random()
        index, self._index = self._index, self._index + 1
        if self._lost(loss_draw):
            return Fate(index, True, ())
        start = arrival
        if imp.rate_kbit is not None:
            start = max(arrival, self._link_free_at) + size * 8 / (imp.rate_kbit * 1000)
            self._link_free_at = start
        delay = max(0.0, imp.delay_ms + (2 * jitter_draw - 1) * imp.jitter_ms) / 1000
        delivery = start + delay
        if not imp.reorder:
            delivery = max(delivery, self._last_delivery)
        self._last_delivery = max(self._last_delivery, delivery)
        deliveries: tuple[float, ...] = (delivery - arrival,)
        if dup_draw < imp.dup:
            deliveries += (delivery - arrival + DUPLICATE_GAP_S,)
        return Fate(index, False, deliveries)


@dataclass(frozen=True)
class Profile:
    name: str
    impairment: Impairment
    source: str


#: Named networks for teaching. The G.1050 rows are the 2007 ITU-T G.1050 model's severity
#: levels as implemented in spandsp-sim/g1050.c (regional delay, jitter, loss); the others
#: are illustrative values (assumed, not from a standard), chosen to be typical and audible.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("perfect", Impairment(), "no impairment: the relay only forwards"),
        Profile(
            "wifi-busy",
            Impairment(loss=0.02, burst=3, delay_ms=10, jitter_ms=20),
            "assumed: a congested 2.4 GHz cell; link-layer retries give delay spread and short loss bursts",
        ),
        Profile(
            "3g",
            Impairment(loss=0.01, burst=2, delay_ms=100, jitter_ms=30, reorder=False),
            "assumed: an HSPA mobile data bearer; in-order delivery (RLC), ~100 ms one way",
        ),
        Profile(
            "satellite",
            Impairment(loss=0.005, delay_ms=280, jitter_ms=10),
            "geostationary hop: 2 x 35,786 km at the speed of light is ~240 ms, plus processing",
        ),
        Profile(
            "g1050-a",
            Impairment(delay_ms=4, jitter_ms=5),
            "ITU-T G.1050 (2007) severity A, regional: delay 4 ms, jitter 5 ms, loss 0 %",
        ),
        Profile(
            "g1050-d",
            Impairment(loss=0.0004, delay_ms=32, jitter_ms=40),
            "ITU-T G.1050 (2007) severity D, regional: delay 32 ms, jitter 40 ms, loss 0.04 %",
        ),
        Profile(
            "g1050-h",
            Impairment(loss=0.01, delay_ms=512, jitter_ms=500),
            "ITU-T G.1050 (2007) severity H, regional: delay 512 ms, jitter 500 ms, loss 1 %",
        ),
    )
}


def profile(name: str) -> Impairment:
    try:
        return PROFILES[name.lower()].impairment
    except KeyError:
        raise ImpairmentError(f"network profile {name!r}: one of {', '.join(PROFILES)}") from None
