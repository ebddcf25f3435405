"""The lab's RTP statistics equal `tshark -q -z rtp,streams` on the same file; loss bursts."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest

from lab.analysis.model import load
from lab.analysis.rtp import (
    LossBursts,
    _sequence,
    _sequence_steps,
    decode_headers,
    loss_bursts,
    stream_stats,
)
from lab.analysis.synth import SynthStream, write_pcap
from lab.analysis.wireshark import rtp_streams
from lab.network.impairment import Impairment, Schedule
from lab.report import render

from .conftest import SYNTHETIC, shared

PRINTED = 0.0015  # tshark prints 3 decimals: equal within rounding, well inside 0.01 ms


def assert_equal_to_tshark(path: Path, heuristic: bool = False, fallback: dict | None = None) -> int:
    model = load(path, names={}, fallback_pts=fallback)
    reference = {(r.src, r.src_port, r.dst, r.dst_port, r.ssrc): r for r in rtp_streams(path, heuristic)}
    ours = {(s.src, s.src_port, s.dst, s.dst_port, s.ssrc): s for s in model.streams}
    assert set(ours) == set(reference), f"{path.name}: streams differ"
    for key, ref in reference.items():
        st = ours[key].stats
        assert (st.packets, st.lost) == (ref.packets, ref.lost), f"{path.name} {key}"
        for field in (f.name for f in dataclasses.fields(ref) if f.name.endswith("_ms")):
            assert getattr(st, field) == pytest.approx(getattr(ref, field), abs=PRINTED), (
                f"{path.name} {key} {field}"
            )
    return len(reference)


@pytest.mark.parametrize("name", [n for n, (_, sdp) in SYNTHETIC.items() if sdp])
def test_generated_calls_equal_tshark(synthetic: dict[str, Path], name: str) -> None:
    assert assert_equal_to_tshark(synthetic[name]) >= 1


def test_rtp_without_sdp_equals_tshark_heuristic(synthetic: dict[str, Path]) -> None:
    assert assert_equal_to_tshark(synthetic["no_sdp_in_capture"], heuristic=True) == 1


def test_rtp_with_no_sip_at_all_is_analysed_as_tshark_heuristic_does(tmp_path: Path) -> None:
    """A media server's capture, or a mirror port on the RTP VLAN: streams, no ladder."""
    a, b = "10.1.1.1", "10.1.1.2"
    path = write_pcap(
        tmp_path / "rtp_only.pcap",
        SynthStream(a, 4000, b, 5000, 0x1111, lost=frozenset({5, 6, 7}), jitter_ms=2).datagrams(0.0)
        + SynthStream(b, 5000, a, 4000, 0x2222, seed=4).datagrams(0.0),
    )
    assert assert_equal_to_tshark(path, heuristic=True) == 2
    model = load(path, names={})
    assert model.messages == () and "No SIP in this capture" in render(model)
    assert [s.bursts.bursts for s in model.streams if s.ssrc == 0x1111] == [1]


def test_real_g711a_call_with_comfort_noise_equals_tshark() -> None:
    assert assert_equal_to_tshark(shared("sip_ipv4_tcp.pcap")) == 2


def test_lab_call_equals_tshark_on_every_leg(lab_capture: Path) -> None:
    # The browser leg's SDP travels over the client's WebSocket: like tshark, heuristics find it.
    assert assert_equal_to_tshark(lab_capture, heuristic=True) == 6


def test_injected_loss_is_counted_exactly(synthetic: dict[str, Path]) -> None:
    model = load(synthetic["loss_and_jitter"], names={})
    lossy = next(s for s in model.streams if s.ssrc == 0x1111)
    assert (lossy.stats.expected, lossy.stats.lost) == (500, 25)
    assert lossy.stats.lost_pct == pytest.approx(5.0)
    wrapped = next(s for s in load(synthetic["sequence_wrap"], names={}).streams)
    assert (wrapped.stats.expected, wrapped.stats.lost) == (400, 3)


def test_jitter_follows_rfc3550_on_a_known_pattern() -> None:
    # Packets every 20 ms, except one 10 ms late: D = 10 at the late packet and 10 right after.
    n = 50
    arrival = np.arange(n) * 0.020
    arrival[20] += 0.010
    stats, series = stream_stats(
        arrival,
        np.arange(n) + 100,
        np.arange(n) * 160,
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=bool),
        np.full(n, 8000),
    )
    assert series.jitter_ms[19] == pytest.approx(0.0)
    assert series.jitter_ms[20] == pytest.approx(10 / 16)
    assert series.jitter_ms[21] == pytest.approx(10 / 16 + (10 - 10 / 16) / 16)
    assert stats.max_delta_ms == pytest.approx(30.0) and stats.min_delta_ms == pytest.approx(10.0)
    assert series.jitter_ms.flags.writeable is False


def received_seqs(impairment: Impairment, count: int, first: int = 0) -> np.ndarray:
    schedule = Schedule(impairment)
    sent = (np.arange(count) + first) % 65536
    return np.array([s for s in sent if not schedule.fate(0.0, 172).dropped])


def test_loss_bursts_of_random_and_gilbert_loss() -> None:
    random_loss = loss_bursts(received_seqs(Impairment(loss=0.05, seed=1), 50_000))
    assert random_loss.burst_ratio == pytest.approx(1.0, abs=0.05)
    assert 0.045 < random_loss.lost / 50_000 < 0.055
    # Simple Gilbert model, loss 5 %, mean burst 4: BurstR = 1 / (p + r) = 3.8.
    bursty = loss_bursts(received_seqs(Impairment(loss=0.05, burst=4, seed=2), 50_000))
    assert abs(bursty.mean_length - 4) / 4 < 0.2 and abs(bursty.burst_ratio - 3.8) / 3.8 < 0.2


def test_loss_bursts_across_the_sequence_wrap() -> None:
    seqs = np.array([65533, 65534, 1, 2, 3, 7, 8])  # 65535 and 0 lost, then 4-6
    assert loss_bursts(seqs) == LossBursts(2, 5, 2.5, loss_bursts(seqs).burst_ratio)
    assert loss_bursts(np.array([5, 6, 6, 8, 7, 9])).lost == 0  # a duplicate and a swap are no loss


def test_rtp_headers_decoded_and_what_is_not_rtp() -> None:
    packets = [
        struct.pack("!BBHII", 0x80, 0x80 | 111, 65535, 0xFFFFFFF0, 0xDEADBEEF) + b"opus",
        struct.pack("!BBHII", 0x80, 200, 1, 2, 3),  # RTCP sender report
        struct.pack("!BBHII", 0x40, 0, 1, 2, 3),  # version 1
        b"\x80\x00short",
    ]
    data = np.frombuffer(b"".join(packets), dtype=np.uint8)
    lengths = np.array([len(p) for p in packets])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    h = decode_headers(data, offsets, lengths)
    assert h.rtp.tolist() == [True, False, False, False]
    assert (int(h.pt[0]), bool(h.marker[0]), int(h.seq[0])) == (111, True, 65535)
    assert (int(h.timestamp[0]), int(h.ssrc[0])) == (0xFFFFFFF0, 0xDEADBEEF)


@pytest.mark.parametrize("seed", range(6))
def test_sequence_errors_and_wraps_at_once_equal_wiresharks_state_machine(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forward-only numbering (gaps, wraps) is counted at once; a late, duplicated or
    out-of-time packet, or a gap across the wrap, takes the state machine: both count alike."""
    rng = np.random.default_rng(seed)
    forward = (rng.integers(60000, 65536) + np.cumsum(rng.choice([1, 1, 1, 2, 7], 30000))) % 65536
    every = np.ones(len(forward), dtype=bool)
    late = forward.copy()
    late[[500, 1500]] = late[[499, 1499]]
    across = forward.copy()
    across[np.argmax(forward < 100) :] += 200  # a gap of 200 across the wrap: Wireshark loses count
    cases = [(late, every), (forward, rng.random(len(forward)) > 0.01), (across % 65536, every)]
    for seq, in_time in cases:
        in_time[0] = True
        assert _sequence(seq, in_time) == _sequence_steps(seq.tolist(), in_time.tolist())
    expected = _sequence_steps(forward.tolist(), every.tolist())
    monkeypatch.setattr("lab.analysis.rtp._sequence_steps", None)  # forward numbering needs no walk
    assert _sequence(forward, every) == expected == (int((np.diff(forward) % 65536 != 1).sum()), expected[1])
    assert expected[1] >= 2
