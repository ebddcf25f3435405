"""The impairment schedule: parsing, and each impairment's statistics over many packets."""

from __future__ import annotations

import itertools

import pytest

from lab.network.impairment import PROFILES, Impairment, ImpairmentError, Schedule, profile


def fates(impairment: Impairment, count: int, gap: float = 0.02, size: int = 172) -> list:
    schedule = Schedule(impairment)
    return [schedule.fate(i * gap, size) for i in range(count)]


def test_spec_round_trip() -> None:
    spec = "loss=5%,burst=3,delay=80ms,jitter=30ms,reorder=off,dup=0.5%,rate=64kbit,seed=7"
    imp = Impairment.parse(spec)
    assert imp == Impairment(0.05, 3, 80, 30, False, 0.005, 64, 7)
    assert Impairment.parse(imp.spec()) == imp
    assert Impairment.parse("").is_perfect and Impairment.parse("seed=3").is_perfect


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("lose=5%", "expected NAME=VALUE with NAME one of loss, burst, delay"),
        ("loss=150%", "loss=150%: must be from 0% up to (not including) 100%"),
        ("loss=five", "loss=five: expected a percentage"),
        ("delay=-5ms", "delay and jitter must be 0 ms or more"),
        ("jitter=3s", "jitter=3s: expected a number of ms"),
        ("burst=0.5", "burst=0.5: a mean burst length is 1 packet or more"),
        ("reorder=maybe", "reorder=maybe: expected on or off"),
        ("rate=0kbit", "rate=0kbit: must be more than 0"),
        ("loss", "expected NAME=VALUE"),
    ],
)
def test_bad_specs_name_the_parameter(spec: str, says: str) -> None:
    with pytest.raises(ImpairmentError) as caught:
        Impairment.parse(spec)
    assert says in str(caught.value)


def test_same_seed_same_fates_packet_for_packet() -> None:
    imp = Impairment.parse("loss=10%,burst=2,jitter=20ms,dup=5%,seed=11")
    assert fates(imp, 2000) == fates(imp, 2000)
    assert fates(imp, 2000) != fates(imp.reseeded(1), 2000)


def test_random_loss_rate() -> None:
    lost = sum(f.dropped for f in fates(Impairment(loss=0.05, seed=1), 100_000))
    assert 0.047 < lost / 100_000 < 0.053


def bursts(dropped: list[bool]) -> list[int]:
    return [len(list(run)) for lost, run in itertools.groupby(dropped) if lost]


@pytest.mark.parametrize("burst", [1.5, 3, 8])
def test_gilbert_loss_has_the_asked_rate_and_mean_burst_length(burst: float) -> None:
    dropped = [f.dropped for f in fates(Impairment(loss=0.05, burst=burst, seed=2), 200_000)]
    runs = bursts(dropped)
    assert 0.045 < sum(dropped) / len(dropped) < 0.055
    assert abs(sum(runs) / len(runs) - burst) / burst < 0.2


def test_fixed_delay_and_duplicates() -> None:
    result = fates(Impairment(delay_ms=80, dup=0.1, seed=4), 20_000)
    assert all(f.deliveries[0] == pytest.approx(0.080) for f in result)
    copies = [f for f in result if len(f.deliveries) == 2]
    assert 0.09 < len(copies) / len(result) < 0.11
    assert all(f.deliveries[1] - f.deliveries[0] == pytest.approx(0.001) for f in copies)


def test_jitter_spreads_delay_and_reorders_unless_told_not_to() -> None:
    arrivals = [i * 0.02 for i in range(5000)]

    def delivered(reorder: bool) -> list[float]:
        result = fates(Impairment(delay_ms=50, jitter_ms=30, reorder=reorder, seed=5), len(arrivals))
        return [a + f.deliveries[0] for a, f in zip(arrivals, result, strict=True)]

    free = delivered(True)
    delays = [d - a for d, a in zip(free, arrivals, strict=True)]
    assert min(delays) >= 0.020 - 1e-9 and max(delays) <= 0.080 + 1e-9
    assert sum(delays) / len(delays) == pytest.approx(0.050, abs=0.002)
    assert free != sorted(free)  # 30 ms of jitter at 20 ms spacing reorders
    fifo = delivered(False)
    assert fifo == sorted(fifo)


def test_rate_limit_serialises_packets() -> None:
    schedule = Schedule(Impairment(rate_kbit=64))
    # Five 200-byte packets at once on a 64 kbit/s link: each takes 25 ms.
    done = [schedule.fate(0.0, 200).deliveries[0] for _ in range(5)]
    assert done == pytest.approx([0.025, 0.050, 0.075, 0.100, 0.125])


def test_profiles_are_valid_and_g1050_matches_the_model() -> None:
    for name, entry in PROFILES.items():
        assert entry.impairment.checked() is entry.impairment and entry.source, name
    assert profile("G1050-D") == Impairment(loss=0.0004, delay_ms=32, jitter_ms=40)
    assert profile("g1050-h").delay_ms == 512 and profile("g1050-h").jitter_ms == 500
    with pytest.raises(ImpairmentError, match="one of perfect, wifi-busy, 3g, satellite"):
        profile("dialup")
