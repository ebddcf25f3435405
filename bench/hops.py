"""The hop-by-hop delay table: when the same audio crosses each leg of a call, both ways,
from each call's capture (lab/analysis/latency.py says how), for N calls and their median.

    flock /tmp/calllab-e2e.lock .venv/bin/python bench/hops.py [--calls 5] [--talk 8]
        [--impair browser:to-browser:loss=5%,burst=3,seed=1]

With --impair it also follows the delay at the browser's ear through the call: its level
before the first loss, and how far above it the delay is 2 s after each loss.
Prints numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.analysis.latency import Direction, ear_delays, path_delays
from lab.analysis.recorded_call import own_streams
from lab.audio import read_wav, resample
from lab.client.session import Call
from lab.config import LabConfig, PhonePolicy
from lab.network.legs import plan
from lab.scenario import CallResult, place_call
from lab.stack import Stack

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)
RECOVERY_S = 2.0


@dataclass
class Measured:
    result: CallResult
    directions: tuple[Direction, ...]
    pesq: dict[str, float]
    recovery: dict[str, float]
    ear_series: list[float]  # the browser's ear delay (ms), every half second of the call
    bridge: list[str]  # what the gateway logged of its bridge or audio relay


def _fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:6.1f}"


def recovery(
    cfg: LabConfig, result: CallResult, call: Call, clock_offset: float
) -> tuple[dict[str, float], list[float]]:
    """The browser's ear delay before the first packet lost toward it, and its excess over
    that level RECOVERY_S after each loss (ms); and the delay every half second."""
    model = result.model
    mouth = result.phone.get("sent_t0")
    if model is None or not isinstance(mouth, float) or not call.heard.arrivals:
        return {}, []
    source, source_rate = read_wav(cfg.prompts_dir / "phone.wav")
    heard = call.heard
    received = np.frombuffer(b"".join(heard.chunks), dtype="<i2").astype(np.float32) / 32768.0
    # The phone's WAV player sends one empty frame at each end of its file: in a loop, what
    # it says is the prompt and 20 ms of silence (the ear delay stepped up 20 ms each loop).
    source = np.concatenate(
        [resample(source, source_rate, heard.rate), np.zeros(heard.rate // 50, np.float32)]
    )
    t, delay = ear_delays(
        source, received, heard.rate, mouth, [len(c) // 2 for c in heard.chunks], heard.arrivals
    )
    series = [
        round(float(np.median(delay[(t >= x) & (t < x + 0.5)])), 1) for x in np.arange(t[0], t[-1], 0.5)
    ]
    lost = sorted(
        float(x) + model.start - clock_offset
        for h in model.hops
        if h.network == cfg.internet.name and h.dst_party == cfg.browser.name
        for x in h.lost_t
    )
    if not lost:
        return {"lost": 0.0, "ear_ms_median": float(np.median(delay))}, series
    before = delay[t < lost[0]]
    level = float(np.median(before)) if len(before) else float(np.median(delay))
    after = [delay[(t >= x + RECOVERY_S) & (t < x + RECOVERY_S + 0.2)] for x in lost]
    excess = [float(np.median(a)) - level for a in after if len(a)]
    return {
        "lost": float(len(lost)),
        "ear_ms_before_loss": level,
        "ear_ms_max": float(delay.max()),
        "excess_ms_2s_after_loss_median": statistics.median(excess) if excess else float("nan"),
        "excess_ms_2s_after_loss_max": max(excess) if excess else float("nan"),
        "ear_ms_last_second": float(np.median(delay[t > t[-1] - 1.0])),
    }, series


async def measure(args: argparse.Namespace) -> list[Measured]:
    """Each call in a lab of its own: the parties' bridge clocks tick with a phase to each
    other that holds for a lab's life and costs 0-20 ms per SIP hop, so calls in one lab
    would repeat one draw of it."""
    clock_offset = time.time() - time.monotonic()
    rows = []
    for _ in range(args.calls):
        async with Stack() as stack:
            gateway_logs = [p.log for p in stack.processes(stack.cfg.gateway.name)]  # front, workers
            rows.append(await one_call(args, stack.cfg, clock_offset, gateway_logs))
    return rows


async def one_call(
    args: argparse.Namespace, cfg: LabConfig, clock_offset: float, gateway_logs: list[Path]
) -> Measured:
    calls: list[Call] = []
    result = await place_call(
        cfg,
        NUMBER,
        duration=args.talk,
        answer=NOW,
        codec=args.codec,
        impairments=plan(args.impair),
        on_status=lambda call: calls.append(call),
    )
    assert result.ok and result.capture and result.model, (result.final_status, result.reason)
    own = own_streams(result.model, result.call_id, (result.webrtc_codec or {}).get("pt"))
    directions = path_delays(result.capture, own, result.log(), cfg, clock_offset)
    pesq = {p.direction: p.mos_lqo for p in result.model.pesq}
    healed, series = recovery(cfg, result, calls[0], clock_offset)
    print(f"call {result.call_id}: " + "; ".join(_line(d) for d in directions), flush=True)
    await asyncio.sleep(0.5)  # the gateway logs its bridge (or relay) as the call ends
    bridge = [  # a transcoded call's bridge, or a relayed one's relay, from the lab's one call
        line.split(" INFO ", 1)[-1]
        for log in gateway_logs
        for line in log.read_text(errors="replace").splitlines()
        if "bridge:" in line or "relay closed:" in line
    ]
    return Measured(result, directions, pesq, healed if args.impair else {}, series, bridge)


def _line(d: Direction) -> str:
    points = " ".join(f"{c.point}={_fmt(c.delay_ms).strip()}" for c in d.crossings[1:])
    return f"{d.label}: {points} gateway={_fmt(d.gateway_ms).strip()} ms"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def table(rows: list[Measured]) -> None:
    print(f"\nmedian of {len(rows)} calls, ms after the mouth (crossings) and per hop:")
    for k, first in enumerate(rows[0].directions):
        dirs = [r.directions[k] for r in rows if len(r.directions) > k]
        ear = _median([d.mouth_to_ear_ms for d in dirs])
        print(f"\n{first.label}")
        for i, crossing in enumerate(first.crossings):
            values = [d.crossings[i].delay_ms for d in dirs]
            print(f"  {crossing.point:<12} ({crossing.party:<13}) {_fmt(_median(values))}")
        print("  hop                          ms   share  spread   what sits there")
        for i, hop in enumerate(first.hops):
            values = [d.hops[i].delay_ms for d in dirs]
            med = _median(values)
            share = f"{med / ear:6.2f}" if med is not None and ear else "     -"
            known = [v for v in values if v is not None]
            spread = f"{max(known) - min(known):6.1f}" if known else "     -"
            print(f"  {hop.between:<25} {_fmt(med)} {share} {spread}   {hop.holds}")
        gw = [d.gateway_ms for d in dirs]
        print(f"  gateway's share: median {_fmt(_median(gw))} ms, per call {[v for v in gw]}")
        print(f"  mouth-to-ear per call: {[d.mouth_to_ear_ms for d in dirs]}")
    labels = sorted({k for r in rows for k in r.pesq})
    for label in labels:
        scores = [r.pesq[label] for r in rows if label in r.pesq]
        delays = [p.mouth_to_ear_ms for r in rows for p in r.result.model.pesq if p.direction == label]  # type: ignore[union-attr]
        print(
            f"PESQ {label}: median {statistics.median(scores):.2f} (per call {scores}); "
            f"the lab's mouth_to_ear_ms {delays}"
        )
    for r in rows:
        jb = (r.result.browser_audio or {}).get("client_jitter_buffer")
        if r.recovery:
            print(
                f"call {r.result.call_id} browser ear: "
                + ", ".join(f"{k} {v:.1f}" for k, v in r.recovery.items())
            )
        print(f"call {r.result.call_id} client jitter buffer: {jb}")
        print(f"call {r.result.call_id} browser ear delay every 0.5 s: {r.ear_series}")
        print(f"call {r.result.call_id} gateway media: {r.bridge}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--talk", type=float, default=8.0, help="seconds per call")
    parser.add_argument("--codec", default="opus", choices=["opus", "pcmu", "pcma", "g722"])
    parser.add_argument("--impair", action="append", default=[], metavar="LEG:DIRECTION:SPEC")
    args = parser.parse_args()
    table(asyncio.run(measure(args)))


if __name__ == "__main__":
    main()
