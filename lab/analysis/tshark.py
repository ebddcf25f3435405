"""Wireshark's own numbers for a capture (`tshark -q -z rtp,streams`), found through pyshark:
the reference the lab's statistics are checked against in tests and benchmarks."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyshark.tshark.tshark import get_process_path


@dataclass(frozen=True)
class TsharkStream:
    src: str
    src_port: int
    dst: str
    dst_port: int
    ssrc: int
    payload: str
    packets: int
    lost: int
    min_delta_ms: float
    mean_delta_ms: float
    max_delta_ms: float
    min_jitter_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float


def rtp_streams(path: str | Path, heuristic: bool = False) -> list[TsharkStream]:
    argv = [get_process_path(), "-n", "-q", "-r", str(path), "-z", "rtp,streams"]
    if heuristic:
        argv += ["-o", "rtp.heuristic_rtp:TRUE"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True).stdout
    return parse_rtp_streams(out)


def parse_rtp_streams(text: str) -> list[TsharkStream]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 17 or not parts[6].startswith("0x"):
            continue
        tail = parts[7:]
        if tail[-1] == "X":
            tail = tail[:-1]
        numbers = [float(x) for x in tail[-6:]]
        lost = int(tail[-8])
        packets = int(tail[-9])
        payload = " ".join(tail[:-9])
        rows.append(
            TsharkStream(
                parts[2],
                int(parts[3]),
                parts[4],
                int(parts[5]),
                int(parts[6], 16),
                payload,
                packets,
                lost,
                *numbers,
            )
        )
    return rows
