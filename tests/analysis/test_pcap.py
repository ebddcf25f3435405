from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.analysis import pcap
from lab.analysis.pcap import CaptureError

from .conftest import shared


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
