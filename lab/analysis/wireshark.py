"""Wireshark's own view of a capture, beside the lab's: its RTP stream statistics
(`tshark -q -z rtp,streams`, the reference the lab's statistics equal in the tests), and,
through pyshark, the full dissection of chosen packets.

pyshark is the right tool for the second: Wireshark's dissectors know every field of every
protocol, and for a handful of packets their cost (tshark decoding to XML/JSON) does not
matter. For whole calls it does: the lab's own reader (lab.analysis.pcap) is ~40x faster than
pyshark's JSON mode, so the call model never goes through pyshark.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyshark
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


def fields(
    path: str | Path, display_filter: str, *names: str, options: Sequence[str] = (), two_pass: bool = False
) -> list[tuple[str, ...]]:
    """`tshark -Y FILTER -T fields -e NAME...`: one tuple of field texts per matching packet.
    options are more tshark arguments (`-o pref:value`); two_pass for fields a later packet sets."""
    argv = [get_process_path(), "-n", *(["-2"] if two_pass else []), *options, "-r", str(path)]
    argv += ["-Y", display_filter, "-T", "fields"]
    argv += [arg for name in names for arg in ("-e", name)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


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


def layer_fields(path: str | Path, display_filter: str, layer: str, limit: int = 20) -> list[dict[str, str]]:
    """Every field Wireshark's dissector for `layer` (sip, sdp, rtp, rtcp, ...) shows, for
    the first `limit` packets that match the Wireshark `display_filter`: one dict a packet,
    field name (pyshark's spelling: `call_id` for sip.Call-ID) to its text.

    pyshark drives tshark from an event loop of its own, which cannot run on a thread whose
    loop already runs (a notebook's): it runs on a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pyshark") as pool:
        return pool.submit(_layer_fields, path, display_filter, layer, limit).result()


def _layer_fields(path: str | Path, display_filter: str, layer: str, limit: int) -> list[dict[str, str]]:
    loop = asyncio.new_event_loop()
    capture = pyshark.FileCapture(
        str(path), display_filter=display_filter, keep_packets=False, eventloop=loop
    )
    rows: list[dict[str, str]] = []
    try:
        for packet in capture:
            if hasattr(packet, layer):
                found = getattr(packet, layer)
                rows.append({name: str(found.get_field(name)) for name in found.field_names})
            if len(rows) >= limit:
                break
    finally:
        capture.close()
        loop.close()
    return rows
