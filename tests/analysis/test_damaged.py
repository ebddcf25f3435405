"""Damaged captures: one line on stderr and exit 2 (nothing usable) or 3 (cut short or damaged
inside, analysed up to there), never a traceback, and bounded memory (issue 12)."""

from __future__ import annotations

import contextlib
import json
import random
import resource
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.analysis import pcap
from lab.cli import main

from .conftest import FIXTURES, SHARED_CAPTURES

SOURCES = sorted(FIXTURES.glob("*.pcap*")) + sorted(SHARED_CAPTURES.glob("*.pcap*"))
EXTREMES = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0, 1)


def _mutants(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """Truncations, bit flips, damaged file headers, extreme values in packets' link, IP and
    TCP/UDP headers (lengths, sequence numbers), and spliced bytes, evenly."""
    rng = random.Random(seed)
    originals = [(p.name, p.read_bytes(), pcap.read_frames(p).offset) for p in SOURCES]
    for i in range(count):
        name, original, records = rng.choice(originals)
        data = bytearray(original)
        kind = ("truncate", "flip", "header", "packet", "splice")[i % 5]
        if kind == "truncate":
            data = data[: rng.randrange(len(data))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind in ("header", "packet"):
            # the file header (and the first record or block), or a packet's first 64 bytes
            at = rng.randrange(0, 64, 4) if kind == "header" else int(rng.choice(records)) + rng.randrange(60)
            value = rng.choice(EXTREMES) if rng.random() < 0.7 else rng.getrandbits(32)
            data[at : at + 4] = value.to_bytes(4, rng.choice(("little", "big")))
        else:
            at, source = rng.randrange(len(data)), rng.randrange(len(data))
            data[at:at] = data[source : source + rng.randint(1, 3000)]
        yield f"{i}-{kind}-{name}", bytes(data)


@contextlib.contextmanager
def _memory_limit(extra: int) -> Iterator[None]:
    """At most `extra` bytes more address space than now: a runaway allocation is a
    MemoryError here, not gigabytes taken from the machine (tracemalloc would be 6x slower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    now = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (now + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_fuzzed_captures_never_crash_and_stay_small(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes: Counter[int] = Counter()
    with _memory_limit(500 << 20):
        for name, data in _mutants(seed=6, count=400):
            path = tmp_path / name
            path.write_bytes(data)
            try:
                code = main(["analyze", str(path), "--json"])
            except BaseException as exc:  # MemoryError and SystemExit too: nothing may escape
                raise AssertionError(f"{name} raised {exc!r}") from exc
            err = capsys.readouterr().err
            assert code in (0, 2, 3), (name, code, err)
            assert len(err.splitlines()) == (code != 0), (name, err)
            outcomes[code] += 1
            path.unlink()
    assert outcomes[0] and outcomes[2] and outcomes[3], outcomes  # the mutants reach every outcome


def _pcapng_blocks(data: bytes) -> list[tuple[int, int]]:
    """(offset, type) of each block of a little-endian pcapng file."""
    blocks, pos = [], 0
    while pos < len(data):
        block_type, length = struct.unpack_from("<II", data, pos)
        blocks.append((pos, block_type))
        pos += length
    return blocks


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_damaged_link_type_is_one_line_and_exit_2(
    synthetic: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(synthetic["loss_and_jitter"].read_bytes())
    struct.pack_into("<I", data, 20, 0xFFFFFFFF)  # raised OverflowError with a traceback
    path = tmp_path / "linktype.pcap"
    path.write_bytes(data)
    for argv in (["analyze", str(path), "--json"], ["report", str(path), "-o", str(tmp_path / "r.html")]):
        code, out, err = _run(capsys, *argv)
        assert (code, out, err) == (
            2,
            "",
            f"calllab: {path}: damaged pcap header (link type field 0xffffffff)\n",
        )


def test_damage_inside_is_analysed_up_to_it_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = (FIXTURES / "attended_transfer_sip.pcapng").read_bytes()
    packets = [pos for pos, kind in _pcapng_blocks(original) if kind == 6]
    whole = tmp_path / "whole.pcapng"
    whole.write_bytes(original)
    messages = json.loads(_run(capsys, "analyze", str(whole), "--json")[1])["messages"]
    for label, at, value in (
        ("caplen past its block", packets[20] + 20, 0xFFFFF000),
        ("undeclared interface", packets[20] + 8, 7),
    ):
        data = bytearray(original)
        struct.pack_into("<I", data, at, value)
        path = tmp_path / "damaged.pcapng"
        path.write_bytes(data)
        code, out, err = _run(capsys, "analyze", str(path), "--json")
        assert code == 3 and err.count("\n") == 1 and "damaged" in err, label
        before = [m for m in messages if m["t"] < json.loads(out)["messages"][-1]["t"] + 1e-9]
        assert json.loads(out)["messages"] == before and 0 < len(before) < len(messages), label
        report = tmp_path / "damaged.html"
        assert _run(capsys, "report", str(path), "-o", str(report))[0] == 3 and report.stat().st_size > 0
    data = bytearray(original)
    data[8:12] = b"\x00\x00\x00\x00"  # the section header's byte order mark
    path.write_bytes(data)
    assert _run(capsys, "analyze", str(path)) == (
        2,
        "",
        f"calllab: {path}: damaged or cut short at byte 0, before any packet\n",
    )


def test_a_record_too_long_to_be_a_packet_is_damage(
    synthetic: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(synthetic["loss_and_jitter"].read_bytes())
    first_len = struct.unpack_from("<I", data, 24 + 8)[0]
    struct.pack_into("<I", data, 24 + 16 + first_len + 8, 1 << 20)  # the second record's length
    path = tmp_path / "long.pcap"
    path.write_bytes(data)
    code, out, err = _run(capsys, "analyze", str(path), "--json")
    assert code == 3 and "damaged" in err
    assert [m["label"] for m in json.loads(out)["messages"]] == ["INVITE"]  # then the damage
