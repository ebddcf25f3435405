"""A long run of calls: does any process of the lab grow, and does any call fail?

    .venv/bin/python bench/soak.py [--calls 200] [--duration 1] [--warmup 20]

Places `--calls` full-chain calls one after another on one lab, each captured and reported
as a user's would be, and prints: failures by status, code and reason; setup time
percentiles; per process of the lab, its threads, open files, RSS and PSS after the warm-up
call and after the last call, with the growth in percent (goal: under 5 %); and the disk
captures/ takes (with its retention at work). Numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lab.capture import disk_use, stored_calls
from lab.config import LabConfig, PhonePolicy
from lab.scenario import place_call
from lab.stack import Stack

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)


@dataclasses.dataclass(frozen=True)
class Usage:
    threads: int
    fds: int
    rss_mb: float
    #: RSS counts a page of Kamailio's shared memory once in every worker that touched it:
    #: it grows while workers first touch pages the others allocated, a plateau, not a leak.
    #: PSS shares each page out among the processes mapping it: the memory really used.
    pss_mb: float


def usage(pid: int) -> Usage:
    """Threads, open file descriptors and resident memory of one process and its children
    in its process group (Kamailio's workers)."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pid]
    threads = fds = 0
    rss = pss = 0.0
    for p in pids or [pid]:
        try:
            status = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{p}/status").read_text().splitlines()
                if ":" in line
            )
            threads += int(status["Threads"])
            rss += int(status["VmRSS"].split()[0]) / 1024
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
            pss += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
    return Usage(threads, fds, round(rss, 1), round(pss, 1))


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def growth(before: float, after: float) -> str:
    return f"{(after - before) / before * 100:+.1f}%" if before else "-"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def soak(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="calllab-soak-"))
    cfg = dataclasses.replace(LabConfig(), home=home, keep_calls=args.keep)
    async with Stack(cfg) as stack:
        pids = {p.party.name: p.proc.pid for p in stack.parties if p.proc is not None}
        pids["this process (client)"] = os.getpid()
        outcomes: collections.Counter[str] = collections.Counter()
        setups: list[float] = []
        first: dict[str, Usage] = {}
        t0 = time.monotonic()
        for n in range(1, args.calls + 1):
            result = await place_call(stack.cfg, NUMBER, duration=args.duration, answer=NOW)
            outcomes["ok" if result.ok else f"{result.final_status} {result.sip_code} {result.reason}"] += 1
            if result.setup_ms is not None:
                setups.append(result.setup_ms)
            if n == args.warmup:
                first = {name: usage(pid) for name, pid in pids.items()}
            if n % 20 == 0:
                print(f"{n} calls, {time.monotonic() - t0:.0f} s", flush=True)
        last = {name: usage(pid) for name, pid in pids.items()}
        elapsed = time.monotonic() - t0
    print(f"\n{args.calls} calls in {elapsed:.0f} s ({args.calls / elapsed * 60:.1f} calls/min)")
    for outcome, count in outcomes.most_common():
        print(f"  {count:4d}  {outcome}")
    print(
        f"setup ms: p50 {percentile(setups, 50):.1f}, p90 {percentile(setups, 90):.1f}, "
        f"p99 {percentile(setups, 99):.1f}, max {max(setups):.1f}, mean {statistics.mean(setups):.1f}"
    )
    print(f"\nper process, after call {args.warmup} -> after call {args.calls}:")
    print(f"{'process':<24} {'threads':>16} {'fds':>16} {'RSS MB':>22} {'PSS MB':>22}")
    for name, after in last.items():
        before = first.get(name, after)
        print(
            f"{name:<24} {before.threads:>5} -> {after.threads:<4} {growth(before.threads, after.threads):>6}"
            f" {before.fds:>5} -> {after.fds:<4} {growth(before.fds, after.fds):>6}"
            f" {before.rss_mb:>7} -> {after.rss_mb:<7} {growth(before.rss_mb, after.rss_mb):>6}"
            f" {before.pss_mb:>7} -> {after.pss_mb:<7} {growth(before.pss_mb, after.pss_mb):>6}"
        )
    kept = stored_calls(cfg.captures_dir)
    size = disk_use([p for paths in kept.values() for p in paths])
    shutil.rmtree(home, ignore_errors=True)
    print(
        f"\ncaptures/: {len(kept)} calls kept (keep_calls {args.keep}), {size / 1e6:.1f} MB"
        f" in {cfg.captures_dir}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--duration", type=float, default=1.0, help="talk time per call, s")
    parser.add_argument("--warmup", type=int, default=20, help="growth is measured from this call on")
    parser.add_argument("--keep", type=int, default=50, help="captures/ retention during the run")
    args = parser.parse_args()
    if not 0 < args.warmup < args.calls:
        parser.error("--warmup must be between 0 and --calls")
    asyncio.run(soak(args))


if __name__ == "__main__":
    main()
