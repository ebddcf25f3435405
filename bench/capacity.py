"""Calls at once: the gateway's CPU per call and each direction's PESQ with 1, 4, 8 and 16
full-chain calls at once (aiortc browsers in this process, the gateway's workers, Kamailio,
the PSTN gateway's channels, the phone's processes), for Opus on the browser leg (decoded
and re-encoded at the gateway) and PCMU (passed through), and the peak RSS of each lab
process after the biggest step. One lab, sized for the biggest step (LabConfig.carrying).

    flock /tmp/calllab-e2e.lock .venv/bin/python bench/capacity.py [--at-once 1 4 8 16]
        [--codecs opus pcmu] [--talk 10]

CPU per call: the gateway's front and workers over the talk (bench/peers.py's window),
idle subtracted, divided by the calls; beside it, after each step, the floor: a bare Python
relay doing the same work per packet with as many calls (bench/relay_floor.py: SRTP, and
for Opus the Opus relay's codecs), and the ratio. In the same window, what each side of the machine
used (cores): all of it (/proc/stat), the browsers (this process), the gateway, the PSTN
gateway's channels, the phones; the SIP server's and network parties' are the rest.
PESQ: each call's recordings against the prompts (bench/call_path.py's measure), median
per step, and how far it is below the one-call step.
No capture runs and no call is analysed, so what is measured is the calls. Numbers, not
verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from call_path import quality
from peers import IDLE_S, NOW, NUMBER, SETTLE_S, PlaceCall, Round, one_round
from relay_floor import per_call_share, share

from lab.config import LabConfig
from lab.process import freeze_startup_heap
from lab.scenario import CallResult, place_call
from lab.stack import Stack


def placing(codec: str) -> PlaceCall:
    async def call(cfg: LabConfig, talk: float) -> CallResult:
        return await place_call(
            cfg, NUMBER, duration=talk, answer=NOW, codec=codec, capture=False, report=False
        )

    return call


def peak_rss_mb(pid: int) -> float | None:
    """The most memory the process has held (VmHWM), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


#: the bare relay (bench/relay_floor.py) doing a call's work per packet: SRTP, and for Opus
#: the Opus relay's codecs
FLOOR = {"opus": "opus", "pcmu": "srtp", "pcma": "srtp"}

#: the sides of the lab whose CPU each step prints: label, the Stack's party names
SIDES = (
    ("gateway", ("Gateway",)),
    ("PSTN", ("PSTN gateway",)),
    ("phones", ("Mobile phone", "Mobile phone 2")),
)


def machine_busy(window: float) -> float:
    """Cores the whole machine kept busy over the next `window` s (/proc/stat: all ticks but
    idle and iowait); this thread sleeps meanwhile, as relay_floor.share's."""

    def ticks() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = ticks()
    time.sleep(window)
    total1, idle1 = ticks()
    return (1 - (idle1 - idle0) / max(1, total1 - total0)) * (os.cpu_count() or 1)


async def cpu_by_side(stack: Stack, talk: float) -> dict[str, float]:
    """Cores each side used in one_round's window (it opens after the idle and settle),
    each measured in a thread of a pool of its own: one that sleeps in the default executor
    would hold one of its few workers, which aiortc encodes in."""
    await asyncio.sleep(IDLE_S + SETTLE_S)
    window = talk - SETTLE_S - 1.0
    pids = {
        label: [p.proc.pid for name in names for p in stack.processes(name) if p.proc is not None]
        for label, names in SIDES
    } | {"browsers": [os.getpid()]}
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=len(pids) + 1, thread_name_prefix="cpu-window") as pool:
        machine = loop.run_in_executor(pool, machine_busy, window)
        sides = [loop.run_in_executor(pool, share, ids, window) for ids in pids.values()]
        used = await asyncio.gather(machine, *sides)
    return dict(zip(["machine", *pids], used, strict=True))


def pesq_medians(cfg: LabConfig, rnd: Round) -> tuple[float | None, float | None]:
    b2p, p2b = [], []
    for result in rnd.results:
        try:
            measured = quality(cfg, result)
        except (AssertionError, ValueError, RuntimeError) as exc:
            print(f"  call {result.call_id}: no PESQ: {exc}")
            continue
        b2p.append(measured["pesq_b2p"])
        p2b.append(measured["pesq_p2b"])
    return (statistics.median(b2p) if b2p else None, statistics.median(p2b) if p2b else None)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def bench(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="calllab-capacity-"))
    try:
        sized = LabConfig(home=home).carrying(max(args.at_once))
        async with Stack(sized, first_free=True) as stack:
            cfg = stack.cfg
            gateway = [p.proc.pid for p in stack.processes(cfg.gateway.name) if p.proc is not None]
            rows = []
            for codec in args.codecs:
                alone: tuple[float | None, float | None] = (None, None)
                for n in args.at_once:
                    sides = asyncio.ensure_future(cpu_by_side(stack, args.talk))
                    rnd = await one_round(cfg, codec, gateway, placing(codec), n, args.talk)
                    used = await sides
                    print("  cores used: " + ", ".join(f"{k} {v:.2f}" for k, v in used.items()), flush=True)
                    b2p, p2b = pesq_medians(cfg, rnd)
                    if n == min(args.at_once):
                        alone = (b2p, p2b)
                    # the same work per packet in a bare Python relay, with as many calls
                    floor = await asyncio.to_thread(
                        per_call_share, n, args.talk - SETTLE_S - 1.0, FLOOR[codec]
                    )
                    rows.append(
                        (codec, n, len(rnd.results), rnd.per_call * 100, floor * 100, b2p, p2b, alone)
                    )
            rss: dict[str, float] = {}
            for p in stack.parties:
                peak = peak_rss_mb(p.proc.pid) if p.proc is not None else None
                if peak is not None:
                    rss[p.role] = max(rss.get(p.role, 0.0), peak)
                    rss[f"{p.role}, all processes"] = rss.get(f"{p.role}, all processes", 0.0) + peak
        print(
            f"\n{'codec':<6} {'at once':>7} {'held':>5} {'CPU %/call':>10} {'floor %':>7} {'x floor':>7} "
            f"{'PESQ b2p':>9} {'(vs 1)':>7} {'PESQ p2b':>9} {'(vs 1)':>7}"
        )
        for codec, n, held, per_call, floor, b2p, p2b, (b1, p1) in rows:
            drop_b = b1 - b2p if b1 is not None and b2p is not None else None
            drop_p = p1 - p2b if p1 is not None and p2b is not None else None
            ratio = per_call / floor if floor > 0 else None
            print(
                f"{codec:<6} {n:>7} {held:>5} {per_call:>10.1f} {floor:>7.1f} {_fmt(ratio):>7} "
                f"{_fmt(b2p):>9} {_fmt(drop_b):>7} {_fmt(p2b):>9} {_fmt(drop_p):>7}"
            )
        print(f"\npeak RSS (VmHWM), MB, after {max(args.at_once)} at once: each party's biggest process, all")
        for party, mb in rss.items():
            print(f"  {party:<40} {mb:8.1f}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--at-once", type=int, nargs="+", default=[1, 4, 8, 16], help="calls at once, per step"
    )
    parser.add_argument("--codecs", nargs="+", default=["opus", "pcmu"], help="browser leg codecs")
    parser.add_argument("--talk", type=float, default=10.0, help="seconds of talk per call")
    args = parser.parse_args()
    freeze_startup_heap()  # this process is the calls' client
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
