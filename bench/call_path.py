"""Measure the call path: lab start, call setup, PESQ against the codec chain's ceiling,
one-way latency, gateway CPU per call, and how many concurrent calls the lab holds.

    .venv/bin/python bench/call_path.py [--calls 20] [--pesq-calls 5]

Prints one block per measure; numbers, not verdicts. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import numpy as np

from lab.analysis.ceiling import through_chain
from lab.audio import RATE, one_way_latency, pesq_nb, read_wav
from lab.config import LabConfig, PhonePolicy
from lab.load import cpu_seconds
from lab.scenario import CallResult, place_call
from lab.stack import Stack

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)


def gateway_cpu_seconds(pids: list[int]) -> float:
    used = cpu_seconds(*pids)
    assert used is not None, f"a gateway process (pids {pids}) has ended"
    return used


def audio_of(result: CallResult, name: str, rate: int = RATE) -> np.ndarray:
    """A recording of the call, which must be at `rate` (the lab's)."""
    path = result.audio.get(name)
    assert path, f"call {result.call_id}: no {name} recording ({result.final_status} {result.reason})"
    try:
        samples, recorded_at = read_wav(Path(path))
    except Exception as exc:
        raise RuntimeError(f"{path} ({Path(path).stat().st_size} bytes): {exc}") from exc
    assert recorded_at == rate, f"{path}: recorded at {recorded_at} Hz, the lab runs at {rate} Hz"
    return samples


def quality(cfg: LabConfig, result: CallResult) -> dict[str, float]:
    browser, _ = read_wav(cfg.prompts_dir / "browser.wav")
    phone, _ = read_wav(cfg.prompts_dir / "phone.wav")
    at_phone, at_browser = audio_of(result, "phone_received"), audio_of(result, "browser_received")
    return {
        "pesq_b2p": pesq_nb(browser, at_phone),
        "pesq_p2b": pesq_nb(phone, at_browser),
        "latency_b2p": one_way_latency(
            browser,
            at_phone,
            result.timing["browser_sent_t0"],
            result.phone["received_t0"],  # type: ignore[arg-type]
        ),
        "latency_p2b": one_way_latency(
            phone,
            at_browser,
            result.phone["sent_t0"],
            result.timing["browser_received_t0"],  # type: ignore[arg-type]
        ),
    }


def summary(values: list[float], unit: str = "", digits: int = 1) -> str:
    return (
        f"median {statistics.median(values):.{digits}f}{unit}, min {min(values):.{digits}f}{unit}, "
        f"max {max(values):.{digits}f}{unit} (n={len(values)})"
    )


async def bench_start(runs: int) -> None:
    ready = []
    for _ in range(runs):
        stack = Stack()
        await stack.start()
        assert stack.ready_s is not None
        ready.append(stack.ready_s * 1000)
        stack.stop()
    print(f"lab start -> every party answers: {summary(ready, ' ms', 0)}")


async def bench_calls(args: argparse.Namespace) -> None:
    async with Stack() as stack:
        cfg = stack.cfg
        if args.only_cpu:
            await bench_capacity(args, stack, 0.0, 0.0)
            return
        setups = []
        for _ in range(args.calls):
            r = await place_call(cfg, NUMBER, duration=0.2, answer=NOW)
            assert r.ok and r.setup_ms is not None, r
            setups.append(r.setup_ms)
        print(f"setup_ms (call() -> ESTABLISHED, answer delay 0): {summary(setups, ' ms')}")

        browser, _ = read_wav(cfg.prompts_dir / "browser.wav")
        phone, _ = read_wav(cfg.prompts_dir / "phone.wav")
        ceiling_b2p = pesq_nb(browser, through_chain(browser, ["opus", "pcmu", cfg.mobile_codec]))
        ceiling_p2b = pesq_nb(phone, through_chain(phone, [cfg.mobile_codec, "pcmu", "opus"]))
        rows = []
        for _ in range(args.pesq_calls):
            r = await place_call(cfg, NUMBER, duration=args.talk, answer=NOW)
            rows.append(quality(cfg, r))
        b2p = statistics.median(q["pesq_b2p"] for q in rows)
        p2b = statistics.median(q["pesq_p2b"] for q in rows)
        print("PESQ NB (median of calls) vs the same prompt offline through the same codec chain:")
        for label, live, ceiling in (
            ("browser -> phone  Opus>PCMU>GSM", b2p, ceiling_b2p),
            ("phone -> browser  GSM>PCMU>Opus", p2b, ceiling_p2b),
        ):
            print(f"  {label}  live {live:.2f}  ceiling {ceiling:.2f}  ratio {live / ceiling:.3f}")
        print(
            f"one-way latency browser -> phone: {summary([q['latency_b2p'] * 1000 for q in rows], ' ms', 0)}"
        )
        print(
            f"one-way latency phone -> browser: {summary([q['latency_p2b'] * 1000 for q in rows], ' ms', 0)}"
        )

        await bench_capacity(args, stack, b2p, p2b)


async def bench_capacity(args: argparse.Namespace, stack: Stack, base_b2p: float, base_p2b: float) -> None:
    """Gateway CPU per call, and calls held at once until PESQ drops by 0.2 (skipped: base 0)."""
    cfg = stack.cfg
    gateway = [p.proc.pid for p in stack.processes(cfg.gateway.name) if p.proc is not None]  # front, workers
    idle0 = gateway_cpu_seconds(gateway)
    await asyncio.sleep(args.window)
    idle = (gateway_cpu_seconds(gateway) - idle0) / args.window
    for n in range(1, args.max_concurrent + 1):
        await asyncio.sleep(1.0)  # the last step's calls are torn down everywhere
        window: dict[str, float] = {}

        async def measure(window: dict[str, float] = window) -> None:
            await asyncio.sleep(2.0)
            c0, t0 = gateway_cpu_seconds(gateway), time.monotonic()
            await asyncio.sleep(args.window)
            window["cpu"] = (gateway_cpu_seconds(gateway) - c0) / (time.monotonic() - t0)

        results = await asyncio.gather(
            *(
                place_call(cfg, NUMBER, duration=args.window + 4, answer=NOW, codec=args.codec, report=False)
                for _ in range(n)
            ),
            measure(),
        )
        calls = [r for r in results if isinstance(r, CallResult)]
        held = [r for r in calls if r.ok]
        if len(held) < n:
            refused = [f"{r.final_status} {r.sip_code} {r.reason}" for r in calls if not r.ok]
            print(f"{n} concurrent calls: only {len(held)} held; refused: {refused}")
            break
        per_call = (window["cpu"] - idle) / n * 100
        line = (
            f"{n} concurrent calls ({args.codec} on the browser leg): gateway CPU {window['cpu'] * 100:.1f}% "
            f"of a core ({per_call:.1f}% per call above idle {idle * 100:.1f}%)"
        )
        if not base_b2p:  # --only-cpu
            print(line)
            continue
        qs = [quality(cfg, r) for r in held]
        worst = min(min(q["pesq_b2p"] - base_b2p, q["pesq_p2b"] - base_p2b) for q in qs)
        print(f"{line}, worst PESQ change {worst:+.2f}")
        if worst < -0.2:
            print(f"  PESQ dropped by more than 0.2 at {n} calls")
            break


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--pesq-calls", type=int, default=5)
    parser.add_argument("--talk", type=float, default=8.0, help="seconds per PESQ call")
    parser.add_argument("--window", type=float, default=6.0, help="CPU measuring window, s")
    parser.add_argument("--max-concurrent", type=int, default=5)
    parser.add_argument(
        "--codec", default="opus", choices=["opus", "pcmu", "pcma"], help="WebRTC leg, CPU runs"
    )
    parser.add_argument("--only-cpu", action="store_true", help="skip start, setup and PESQ measurements")
    args = parser.parse_args()
    if not args.only_cpu:
        asyncio.run(bench_start(args.starts))
    asyncio.run(bench_calls(args))


if __name__ == "__main__":
    main()
