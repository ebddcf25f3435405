from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lab.analysis import pcap
from lab.analysis.pcap import CaptureError

from .conftest import FIXTURES, shared


def test_pcap_and_pcapng_read_the_same_packets(synthetic: dict[str, Path], tmp_path: Path) -> None:
    classic = synthetic["loss_and_jitter"]
    ng = tmp_path / "same.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(classic), str(ng)], check=True, capture_output=True)
    a, b = pcap.read(classic), pcap.read(ng)
    assert len(a.udp.ts) == len(b.udp.ts) > 900
    assert (a.udp.sport == b.udp.sport).all() and (a.udp.length == b.udp.length).all()
    assert abs(a.udp.ts - b.udp.ts).max() < 1e-6


def test_ipv6_addresses() -> None:
    packets = pcap.read(shared("sip_ipv6_udp.pcap"))
    assert "fec0::216:d3ff:fe0d:22c" in packets.udp.addresses


def test_ethernet_padding_is_not_tcp_payload() -> None:
    packets = pcap.read(shared("sip_ipv4_tcp_retrans.pcap"))
    assert all(seg.payload != b"\x00" * len(seg.payload) for seg in packets.tcp)


def test_truncated_file_is_read_up_to_the_cut(synthetic: dict[str, Path], tmp_path: Path) -> None:
    data = synthetic["loss_and_jitter"].read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    frames = pcap.read_frames(cut)
    assert frames.truncated and 0 < len(frames.ts) < len(pcap.read_frames(synthetic["loss_and_jitter"]).ts)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "too short"), (b"hello world, this is not a capture file", "not a pcap or pcapng")],
)
def test_not_a_capture(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message):
        pcap.read(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="No such file"):
        pcap.read(tmp_path / "nope.pcap")


@pytest.mark.parametrize("source", ["lab_call.pcapng", "sip_tcp_websocket.pcap"])
def test_growing_capture_reads_what_was_appended_once(source: str, tmp_path: Path) -> None:
    path = FIXTURES / source if (FIXTURES / source).exists() else shared(source)
    data, whole = path.read_bytes(), pcap.read(path)
    rng = random.Random(3)
    # Pieces that end inside the file header, inside record headers and inside packets.
    cuts = sorted({10, 23, 24, 30, *rng.sample(range(31, len(data)), 60), len(data)})
    target = tmp_path / "growing" / path.name
    growing = pcap.GrowingCapture(target)
    assert len(growing.read().frames.ts) == 0  # not there yet
    target.parent.mkdir()
    batches = []
    done = 0
    with open(target, "ab") as out:
        for cut in cuts:
            out.write(data[done:cut])
            out.flush()
            done = cut
            first = growing.frames_read
            batches.append((first, growing.read()))
    assert growing.frames_read == len(whole.frames.ts) and len(growing.read().frames.ts) == 0
    assert sum(len(b.frames.ts) > 0 for _, b in batches) > 20  # it did read in pieces
    assert np.array_equal(np.concatenate([b.frames.ts for _, b in batches]), whole.frames.ts)
    assert [first + f for first, b in batches for f in b.udp.frame] == whole.udp.frame.tolist()
    assert [b.payload(i) for _, b in batches for i in range(len(b.udp.ts))] == [
        whole.payload(i) for i in range(len(whole.udp.ts))
    ]
    assert [(first + s.frame, s.seq, s.payload) for first, b in batches for s in b.tcp] == [
        (s.frame, s.seq, s.payload) for s in whole.tcp
    ]

    # What was read is never read again: garble it, append the last five records once more.
    header = 28 if path.suffix == ".pcapng" else 16
    tail = data[int(whole.frames.offset[-5]) - header :]
    with open(target, "r+b") as out:
        out.seek(64)
        out.write(b"\xff" * (len(data) - len(tail) - 64))
        out.seek(0, 2)
        out.write(tail)
    again = growing.read()
    assert np.array_equal(again.frames.ts, whole.frames.ts[-5:])
    assert growing.frames_read == len(whole.frames.ts) + 5


def test_growing_file_that_is_no_capture(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"not a capture, but long enough to tell")
    with pytest.raises(CaptureError, match="not a pcap or pcapng"):
        pcap.GrowingCapture(path).read()
