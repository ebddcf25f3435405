"""Full analysis of a 10-minute, 3-leg call capture against Wireshark's own RTP statistics.

    .venv/bin/python bench/analysis.py [--minutes 10] [--runs 3]

Generates the capture (6 RTP streams: 3 legs x 2 directions, 20 ms packets, some loss and
jitter), then times in this same run:
  * tshark -q -z rtp,streams (the reference: Wireshark's C statistics, process start included);
  * calllab's full analysis (pcap read, SIP, call model, RTP statistics and E-model, ladder
    rows) in a fresh Python process, interpreter start included, and its peak memory;
  * the same analysis inside a warm process (what a notebook pays).
Prints the ratios to tshark. Numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.analysis.ladder import ladder_rows
from lab.analysis.model import load
from lab.analysis.synth import SynthCall, SynthStream

LEGS = [
    ("127.0.0.2", 20000, "127.0.0.4", 30000),
    ("127.0.0.4", 30002, "127.0.0.5", 40000),
    ("127.0.0.1", 50000, "127.0.0.2", 20002),
]
CHILD = (
    "import sys\n"
    "from lab.analysis.ladder import ladder_rows\n"
    "from lab.analysis.model import load\n"
    "m = load(sys.argv[1]); ladder_rows(m)\n"
    "print(len(m.streams), sum(s.stats.packets for s in m.streams))"
)


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


def timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.pcap"
        t0 = time.perf_counter()
        rtp = make_capture(path, args.minutes)
        print(
            f"capture: {args.minutes:g} min, {rtp} RTP packets, {path.stat().st_size / 1e6:.1f} MB "
            f"(generated in {time.perf_counter() - t0:.1f} s)"
        )
        tshark, ours, warm = [], [], []
        for _ in range(args.runs):
            tshark.append(timed(["tshark", "-n", "-q", "-r", str(path), "-z", "rtp,streams"])[0])
            seconds, out = timed([sys.executable, "-c", CHILD, str(path)])
            ours.append(seconds)
            t1 = time.perf_counter()
            model = load(path)
            ladder_rows(model)
            warm.append(time.perf_counter() - t1)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ref = statistics.median(tshark)
        print(f"tshark -z rtp,streams:             {ref:.3f} s (median of {args.runs})")
        for label, runs in (("calllab, fresh process:", ours), ("calllab, warm (notebook) process:", warm)):
            print(f"{label:<35}{statistics.median(runs):.3f} s  ratio {statistics.median(runs) / ref:.2f}")
        print(f"streams and RTP packets analysed: {out.strip()}")
        print(f"peak memory of any child (tshark or calllab): {peak_mb:.0f} MB")
        child_peak = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD + "; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        print(f"calllab analysis peak RSS: {int(child_peak) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
