"""Which network a call's media crosses, per leg and direction: `--impair LEG:DIRECTION:SPEC`
and `--network PROFILE[@LEG]`, and the SIP header that carries them along the call.

Legs, in call-path order: `browser` (browser <-> gateway), `sip` (gateway <-> PSTN gateway)
and `mobile` (PSTN gateway <-> phone). Directions: `to-phone`, `to-browser`, or `both`,
which gives each direction its own random stream (the same network, not the same losses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lab.network.impairment import PROFILES, Impairment, ImpairmentError, profile

LEGS = ("browser", "sip", "mobile")
DIRECTIONS = ("to-phone", "to-browser")
#: Seed offset of the to-browser direction when one spec is asked for both.
OTHER_DIRECTION_SEED = 1000


@dataclass(frozen=True)
class LegImpairment:
    """What the network of one leg does in one direction."""

    leg: str
    direction: str  # to-phone or to-browser
    impairment: Impairment

    def header_item(self) -> str:
        return f"{self.leg}:{self.direction}:{self.impairment.spec()}"


def _leg(text: str, where: str) -> str:
    leg = text.strip().lower()
    if leg not in LEGS:
        raise ImpairmentError(f"{where}: leg {text!r}: one of {', '.join(LEGS)}")
    return leg


def _directions(text: str, where: str) -> tuple[str, ...]:
    direction = text.strip().lower()
    if direction == "both":
        return DIRECTIONS
    if direction not in DIRECTIONS:
        raise ImpairmentError(f"{where}: direction {text!r}: one of to-phone, to-browser, both")
    return (direction,)


def _both_ways(leg: str, directions: tuple[str, ...], impairment: Impairment) -> list[LegImpairment]:
    return [
        LegImpairment(leg, d, impairment.reseeded(OTHER_DIRECTION_SEED) if i else impairment)
        for i, d in enumerate(directions)
    ]


def parse_impair(text: str) -> list[LegImpairment]:
    """`mobile:to-phone:loss=5%,burst=3,seed=7` (one --impair option)."""
    parts = text.split(":", 2)
    if len(parts) != 3:
        raise ImpairmentError(f"--impair {text!r}: expected LEG:DIRECTION:SPEC, e.g. mobile:both:loss=5%")
    where = f"--impair {text!r}"
    leg, directions = _leg(parts[0], where), _directions(parts[1], where)
    try:
        impairment = Impairment.parse(parts[2])
    except ImpairmentError as exc:
        raise ImpairmentError(f"{where}: {exc}") from None
    return _both_ways(leg, directions, impairment)


def parse_network(text: str) -> list[LegImpairment]:
    """`3g@mobile`, or a profile alone for every leg (one --network option)."""
    name, _, leg_text = text.partition("@")
    where = f"--network {text!r}"
    try:
        impairment = profile(name.strip())
    except ImpairmentError as exc:
        raise ImpairmentError(f"{where}: {exc}") from None
    legs = (_leg(leg_text, where),) if leg_text else LEGS
    return [item for leg in legs for item in _both_ways(leg, DIRECTIONS, impairment)]


def plan(impair: Iterable[str] = (), network: Iterable[str] = ()) -> tuple[LegImpairment, ...]:
    """Every leg and direction asked for, later options overriding earlier ones; perfect
    networks are left out (their media takes the direct path)."""
    chosen: dict[tuple[str, str], LegImpairment] = {}
    for item in [
        *(i for n in network for i in parse_network(n)),
        *(i for t in impair for i in parse_impair(t)),
    ]:
        chosen[item.leg, item.direction] = item
    return tuple(
        chosen[leg, d]
        for leg in LEGS
        for d in DIRECTIONS
        if (leg, d) in chosen and not chosen[leg, d].impairment.is_perfect
    )


def to_header(items: Iterable[LegImpairment]) -> str:
    return "; ".join(item.header_item() for item in items)


def from_header(text: str) -> tuple[LegImpairment, ...]:
    """The inverse of to_header(); ImpairmentError for anything else."""
    return tuple(i for item in text.split(";") if item.strip() for i in parse_impair(item.strip()))


def on_leg(items: Iterable[LegImpairment], leg: str) -> dict[str, Impairment]:
    """The impairment per direction on one leg (directions not asked for are perfect)."""
    return {item.direction: item.impairment for item in items if item.leg == leg}


def profiles_help() -> str:
    return "; ".join(f"{p.name}: {p.impairment.spec()} ({p.source})" for p in PROFILES.values())
