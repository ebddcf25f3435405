"""The live ladder's model, read from a growing capture piece by piece, holds the messages a
whole-file read finds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lab.analysis import pcap
from lab.analysis.live import LiveCall
from lab.analysis.model import CallModel, lab_party_names, load

from .conftest import FIXTURES, shared
from .test_media_switch import AUDIO, switched_call


def _grow(source: Path, target: Path, cuts: list[int]) -> list[tuple[int, CallModel]]:
    """Write `source` to `target` up to each cut in turn, updating a LiveCall after each; the
    bytes written and the model at every step."""
    live = LiveCall(target, lab_party_names())
    data = source.read_bytes()
    steps = [(0, live.update())]  # no file yet
    with open(target, "ab") as out:
        for cut in cuts:
            out.write(data[out.tell() : cut])
            out.flush()
            steps.append((cut, live.update()))
    return steps


def _streams(model: CallModel) -> list[tuple[object, ...]]:
    """What the ladder shows of each stream (its RTCP is the whole-file analysis's)."""
    return [(s.label, s.src, s.src_port, s.ssrc, s.stats, s.bursts, s.quality) for s in model.streams]


def _cuts(size: int, seed: int, pieces: int) -> list[int]:
    """Cuts inside the file header, inside record headers and inside packets, at random."""
    rng = random.Random(seed)
    return sorted({3, 10, 23, 24, 30, *rng.sample(range(31, size), min(pieces, size - 31)), size})


@pytest.mark.parametrize(
    "source",
    [
        "lab_call.pcapng",
        "attended_transfer_sip.pcapng",
        "sip_tcp_websocket.pcap",
        "sip_ipv4_tcp_retrans.pcap",
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_messages_read_in_pieces_equal_a_whole_file_read(source: str, seed: int, tmp_path: Path) -> None:
    path = FIXTURES / source if (FIXTURES / source).exists() else shared(source)
    whole = load(path, lab_party_names())
    assert whole.messages
    steps = _grow(path, tmp_path / path.name, _cuts(path.stat().st_size, seed, 80))
    last = steps[-1][1]
    assert last.messages == whole.messages  # same numbering, frames, times, retransmissions
    assert last.webrtc == whole.webrtc
    assert (last.dialogs, last.calls) == (whole.dialogs, whole.calls)
    assert last.tcp_retransmissions == whole.tcp_retransmissions
    assert _streams(last) == _streams(whole)  # the ladder's RTP bands
    assert [h.delay_ms for h in last.hops] == [h.delay_ms for h in whole.hops]
    # Each step's messages were appended: the next step's start with them.
    for (_, before), (_, after) in zip(steps, steps[1:], strict=False):
        assert after.messages[: len(before.messages)] == before.messages
    assert sum(b.messages != a.messages for (_, a), (_, b) in zip(steps, steps[1:], strict=False)) > 1


def test_a_switch_to_fax_ends_the_rtp_where_the_reinvite_says(tmp_path: Path) -> None:
    """The SDP in force is found by frame: the pieces' frames must count from the file's start."""
    path = switched_call(tmp_path / "t38.pcap", "t38")
    steps = _grow(path, tmp_path / "growing.pcap", _cuts(path.stat().st_size, 3, 40))
    whole = load(path, lab_party_names())
    assert _streams(steps[-1][1]) == _streams(whole) and steps[-1][1].messages == whole.messages
    assert [s.stats.packets for s in whole.streams] == [AUDIO, AUDIO]  # not the UDPTL after it


def test_a_record_cut_in_two_waits_for_its_second_half(tmp_path: Path) -> None:
    path = FIXTURES / "lab_call.pcapng"
    whole = load(path, lab_party_names())
    first = whole.messages[0]
    frames = pcap.read_frames(path)
    # Cut inside the first SIP message's record, then complete it.
    inside = int(frames.offset[first.frame - 1]) + 40
    steps = _grow(path, tmp_path / path.name, [inside, inside + 10_000])
    assert steps[1][1].messages == ()
    assert steps[2][1].messages[0] == first


def test_an_update_with_nothing_new_is_the_same_snapshot(tmp_path: Path) -> None:
    target = tmp_path / "call.pcapng"
    target.write_bytes((FIXTURES / "lab_call.pcapng").read_bytes())
    live = LiveCall(target, lab_party_names())
    model = live.update()
    assert model.messages and live.update() is model


def test_a_file_that_is_no_capture(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"not a capture, but long enough to tell")
    with pytest.raises(pcap.CaptureError, match="not a pcap or pcapng"):
        LiveCall(path, {}).update()
