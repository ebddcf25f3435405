"""Measure a sweep (issue 9): 2 codecs x 4 loss levels on the mobile leg x 3 repeats, run as
`calllab sweep` runs it, against one call alone measured in the same run.

    flock /tmp/calllab-e2e.lock .venv/bin/python bench/sweep.py [--repeat 3] [--duration 5] [--parallel 4]

Prints the wall time, calls per minute, the parallel speed-up (one call's wall time x the
number of calls / the sweep's wall time) and the median PESQ per codec and loss level;
numbers, not verdicts. Writes the sweep's report and CSV to captures/bench-sweep.*.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from lab.batch import analysis_pool
from lab.stack import Stack
from lab.sweep import Results, Sweep, default_parallel, lab_call, run, summary, write_report

NUMBER = "+79001234567"
CODECS = ("opus", "pcmu")
LOSSES = ("0", "2", "5", "10")


async def timed(stack: Stack, sweep: Sweep, parallel: int, results: Results) -> float:
    with analysis_pool() as analysis:
        analysis.submit(int).result()  # the worker's start is not the sweep's cost
        t0 = time.monotonic()
        await run(sweep.points(), lab_call(stack.cfg, sweep, analysis), results, parallel)
        return time.monotonic() - t0


async def main(args: argparse.Namespace) -> None:
    async with Stack() as stack:
        parallel = args.parallel or default_parallel(stack.cfg)
        one = Sweep(
            NUMBER, "mobile", "both", (("codec", ("opus",)),), (("loss", ("5",)),), 1, 1, args.duration
        )
        alone = await timed(stack, one, 1, Results())
        sweep = Sweep(
            NUMBER, "mobile", "both", (("codec", CODECS),), (("loss", LOSSES),), args.repeat, 1, args.duration
        )
        results = Results(stack.cfg.captures_dir / "bench-sweep.csv")
        wall = await timed(stack, sweep, parallel, results)
        results.close()
    calls = len(results.rows)
    print(f"one call alone ({args.duration:g} s talk, analysed): {alone:.1f} s")
    print(f"sweep: {len(CODECS)} codecs x {len(LOSSES)} loss levels x {args.repeat} repeats = {calls} calls")
    print(f"  {parallel} at once: wall {wall:.1f} s, {calls / wall * 60:.1f} calls/min")
    print(f"  speed-up: {alone * calls / wall:.2f} (one call alone x {calls} / wall)")
    for line in summary(results.rows, calls):
        print(f"  {line.strip()}")
    print("median PESQ (to phone / to browser) by loss on the mobile leg:")
    for codec in CODECS:
        cells = []
        for loss in LOSSES:
            rows = [
                r for r in results.rows if r["codec"] == codec and r["loss_pct"] == float(loss) and r["ok"]
            ]
            medians = [
                statistics.median(v) if (v := [r[k] for r in rows if r[k] is not None]) else float("nan")
                for k in ("to_phone_pesq", "to_browser_pesq")
            ]
            cells.append(f"{loss:>2}%: {medians[0]:.2f}/{medians[1]:.2f}")
        print(f"  {codec:<5} " + "  ".join(cells))
    path = write_report(sweep, results.rows, stack.cfg.captures_dir / "bench-sweep.html", calls)
    print(f"report {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of talk per call")
    parser.add_argument(
        "--parallel", type=int, default=None, help="calls at once (default: the lab's capacity)"
    )
    asyncio.run(main(parser.parse_args()))
