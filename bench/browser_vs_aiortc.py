"""A Chromium call (the Phone page) and an aiortc call (lab.client) through the same lab,
alternating: setup time, PESQ each way against the codec chain's ceiling, mouth-to-ear
delay each way (the call's own PESQ rows), and the gateway's CPU per call.

    flock /tmp/calllab-e2e.lock .venv/bin/python bench/browser_vs_aiortc.py [--rounds 3] [--duration 8]

Prints one row per call and the medians per browser; numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from lab.chromium import browser_call
from lab.config import LabConfig, PhonePolicy
from lab.load import cpu_seconds
from lab.scenario import CallResult, place_call
from lab.stack import Stack, read_state, role_pids

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)


async def measured(
    cfg: LabConfig, place: Callable[[], Awaitable[CallResult]], idle_cpu: float
) -> dict[str, float | str | None]:
    state = read_state(cfg)
    assert state is not None, "the lab is not up"
    pids = role_pids(state, cfg.gateway.name)
    cpu0, t0 = cpu_seconds(*pids), time.monotonic()
    result = await place()
    cpu1, t1 = cpu_seconds(*pids), time.monotonic()
    assert result.ok and result.model is not None, result
    row: dict[str, float | str | None] = {"browser": result.browser, "setup_ms": result.setup_ms}
    if cpu0 is not None and cpu1 is not None:
        # Over the call's whole life (setup, talk, hangup); idle subtracted, in % of a core.
        row["gateway_cpu_pct"] = round(100 * ((cpu1 - cpu0) / (t1 - t0) - idle_cpu), 1)
    for p in result.model.pesq:
        way = "b2p" if p.direction.startswith("Browser") else "p2b"
        row[f"pesq_{way}"] = p.mos_lqo
        row[f"ceiling_{way}"] = p.ceiling
        row[f"m2e_{way}_ms"] = p.mouth_to_ear_ms
    return row


async def main(rounds: int, duration: float) -> None:
    async with Stack() as stack:
        cfg = stack.cfg
        state = read_state(cfg)
        assert state is not None
        pids = role_pids(state, cfg.gateway.name)
        before = cpu_seconds(*pids)
        await asyncio.sleep(3)
        after = cpu_seconds(*pids)
        idle = (after - before) / 3 if before is not None and after is not None else 0.0
        rows = []
        for _ in range(rounds):
            for place in (
                lambda: browser_call(cfg, NUMBER, duration=duration, answer=NOW),
                lambda: place_call(cfg, NUMBER, duration=duration, answer=NOW),
            ):
                row = await measured(cfg, place, idle)
                print(row, flush=True)
                rows.append(row)
        print(f"gateway idle: {100 * idle:.1f} % of a core")
        for browser in ("chromium", "aiortc"):
            mine = [r for r in rows if r["browser"] == browser]
            keys = [k for k in mine[0] if k != "browser"]
            medians = {
                k: statistics.median(v for r in mine if isinstance(v := r.get(k), float | int)) for k in keys
            }
            print(browser, {k: round(v, 2) for k, v in medians.items()})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds each call talks")
    args = ap.parse_args()
    asyncio.run(main(args.rounds, args.duration))
