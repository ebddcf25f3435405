"""Full analysis of a 10-minute, 3-leg call capture against Wireshark's own RTP statistics.

    .venv/bin/python bench/analysis.py [--minutes 10] [--runs 5]

Generates the capture (6 RTP streams: 3 legs x 2 directions, 20 ms packets, some loss and
jitter), then times in this same run, in pairs, each a whole process (start and imports
included):
  * tshark -q -z rtp,streams (the reference: Wireshark's C statistics);
  * `calllab analyze CAPTURE --json` (pcap read, SIP, call model, RTP statistics, E-model,
    RTCP, the JSON);
and the same analysis inside a warm process (what a notebook pays). Prints the median of
the pairs' ratios by wall time and by CPU time (user + system: what a busy machine's other
work does not move), and each side's peak RSS. Then the notebook's live ladder at the end
of the call: one refresh that reads the last second appended (lab.analysis.live), against
re-reading the whole file. Numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lab.analysis.ladder import ladder_rows
from lab.analysis.live import LiveCall
from lab.analysis.model import lab_party_names, load
from lab.analysis.synth import SynthCall, SynthStream

LEGS = [
    ("127.0.0.2", 20000, "127.0.0.4", 30000),
    ("127.0.0.4", 30002, "127.0.0.5", 40000),
    ("127.0.0.1", 50000, "127.0.0.2", 20002),
]


def make_capture(path: Path, minutes: float) -> int:
    packets = int(minutes * 60 * 50)
    streams = []
    for i, (a, pa, b, pb) in enumerate(LEGS):
        lost = frozenset(range(i * 7 + 3, packets, 97))
        streams.append(
            SynthStream(a, pa, b, pb, 0x1000 + 2 * i, packets=packets, jitter_ms=1.5, lost=lost, seed=i)
        )
        streams.append(SynthStream(b, pb, a, pa, 0x1001 + 2 * i, packets=packets, jitter_ms=0.5, seed=10 + i))
    SynthCall(caller=("127.0.0.2", 5060), callee=("127.0.0.4", 5060), streams=streams).write(path)
    return sum(len(s.datagrams(0.0)) for s in streams)


@dataclass(frozen=True)
class Run:
    wall: float  # s
    cpu: float  # s, user + system
    peak_mb: float
    out: str


def timed(argv: list[str]) -> Run:
    """One whole process: its wall time, CPU time and peak RSS (wait4's rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} exited {os.waitstatus_to_exitcode(status)}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.pcap"
        t0 = time.perf_counter()
        rtp = make_capture(path, args.minutes)
        print(
            f"capture: {args.minutes:g} min, {rtp} RTP packets, {path.stat().st_size / 1e6:.1f} MB "
            f"(generated in {time.perf_counter() - t0:.1f} s)"
        )
        tshark: list[Run] = []
        ours: list[Run] = []
        warm: list[float] = []
        for _ in range(args.runs):
            tshark.append(timed(["tshark", "-n", "-q", "-r", str(path), "-z", "rtp,streams"]))
            ours.append(timed([sys.executable, "-m", "lab.cli", "analyze", str(path), "--json"]))
            t1 = time.perf_counter()
            model = load(path)
            ladder_rows(model)
            warm.append(time.perf_counter() - t1)
        streams = json.loads(ours[-1].out)["streams"]
        print(f"streams and RTP packets analysed: {len(streams)} {sum(s['packets'] for s in streams)}")
        for what in ("wall", "cpu"):
            ref = statistics.median(getattr(r, what) for r in tshark)
            mine = statistics.median(getattr(r, what) for r in ours)
            pairs = zip(ours, tshark, strict=True)
            ratio = statistics.median(getattr(o, what) / getattr(t, what) for o, t in pairs)
            print(
                f"{what:>4}: tshark -z rtp,streams {ref:.3f} s, calllab analyze --json {mine:.3f} s "
                f"(medians of {args.runs}); median ratio {ratio:.2f}"
            )
        in_kernel = statistics.median(warm)
        ratio = in_kernel / statistics.median(r.wall for r in tshark)
        print(f"calllab, warm (notebook) process: {in_kernel:.3f} s, ratio {ratio:.2f}")
        print(
            f"peak RSS: tshark {max(r.peak_mb for r in tshark):.0f} MB, "
            f"calllab analyze {max(r.peak_mb for r in ours):.0f} MB"
        )
        refresh = live_refresh(path, Path(tmp) / "growing.pcap", args.minutes, args.runs)
        whole = statistics.median(warm)
        print(
            f"live ladder, one refresh with the last second appended: {refresh:.3f} s "
            f"(re-reading the whole file: {whole:.3f} s); ratio to tshark "
            f"{refresh / statistics.median(r.wall for r in tshark):.3f}"
        )


def live_refresh(path: Path, growing: Path, minutes: float, runs: int) -> float:
    """Median time of a live view's refresh after the last second of the call was appended."""
    data = path.read_bytes()
    cut = len(data) - int(len(data) / (minutes * 60))  # all but about the last second
    times = []
    for _ in range(runs):
        growing.write_bytes(data[:cut])
        live = LiveCall(growing, lab_party_names())
        live.update()
        with open(growing, "ab") as out:
            out.write(data[cut:])
        t0 = time.perf_counter()
        ladder_rows(live.update())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    main()
