"""The lab's gateway beside a peer, in one run: the same call (aiortc browser, PCMU on the
browser leg, Kamailio, the PSTN gateway, the phone) once through calllab's gateway and once
through the Janus WebRTC gateway's SIP plugin (lab/janus.py), both on one lab.

    make bench-peers     # installs Janus (Debian's `janus`) first
    flock /tmp/calllab-e2e.lock .venv/bin/python bench/peers.py [--concurrency 1 4] [--rounds 1] [--talk 10]

Per path: setup time (the browser starts the call -> it learns the call is answered: the
gateway's ESTABLISHED, Janus's "accepted"; the phone's own answer delay left out), one-way
delay each direction and PESQ each direction from the recordings (bench/call_path.py's
measures), and the gateway process's CPU per call above idle with 1 and 4 calls at once
(from /proc, over the talk, from 2 s after the calls are placed). Prints one table, with
calllab / Janus ratios. Numbers, not verdicts.

Both relay the browser leg's PCMU to the SIP leg without decoding it (calllab's G.711
passthrough, lab/gateway/passthrough.py): the CPU ratio is that of two relays, calllab's
in Python on aiortc's transports, Janus's in C. `calllab up --transcode` is the other way.
The floor under both, measured in the same run: a bare Python relay doing SRTP one side
(bench/relay_floor.py), with as many calls at once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from call_path import quality
from relay_floor import per_call_share, share

from lab import webrtc
from lab.client.media import CallMedia
from lab.config import ANSWER_HEADER, CALL_HEADER, LabConfig, PhonePolicy, call_dir, new_call_id
from lab.janus import JanusConfig, JanusProcess, JanusSession, SipHandle
from lab.process import freeze_startup_heap
from lab.scenario import CallResult, lab_account, phone_report, place_call
from lab.signaling import CallStatus
from lab.stack import Stack
from lab.tasks import Tasks

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)
CODEC = "pcmu"
PATHS = ("calllab", "Janus")
IDLE_S = 2.0  # s the gateway is measured with no call
SETTLE_S = 2.0  # s after placing the calls before the CPU window opens
HANGUP_TIMEOUT = 5.0  # s for Janus to report the call over after the hangup

log = logging.getLogger("bench.peers")

PlaceCall = Callable[[LabConfig, float], Awaitable[CallResult]]


@dataclasses.dataclass
class Round:
    """n calls at once through one path: their results and the gateway's CPU."""

    path: str
    n: int
    results: list[CallResult]
    cpu: float  # the gateway process's share of a core while the n calls talked
    idle: float  # ... and with no call

    @property
    def per_call(self) -> float:
        return (self.cpu - self.idle) / self.n


async def calllab_call(cfg: LabConfig, talk: float) -> CallResult:
    return await place_call(cfg, NUMBER, duration=talk, answer=NOW, codec=CODEC, capture=False, report=False)


def janus_caller(socket: Path) -> PlaceCall:
    async def call(cfg: LabConfig, talk: float) -> CallResult:
        return await janus_call(cfg, socket, talk)

    return call


async def janus_call(cfg: LabConfig, socket: Path, talk: float) -> CallResult:
    """The lab's call through Janus's SIP plugin: the lab's aiortc client media (a
    CallMedia: the prompt as microphone, what comes back recorded) on Janus's API instead
    of the lab's gateway; the lab's SIP account and call headers, so the PSTN gateway and
    the phone treat and file it like any lab call."""
    webrtc.configure(cfg.browser.host)
    call_id = new_call_id("janus-")
    folder = call_dir(cfg, call_id)
    tasks = Tasks(f"Janus call {call_id}", log)
    media = CallMedia(webrtc.BrowserAudio(CODEC), cfg.prompts_dir / "browser.wav", folder, tasks, call_id)
    result = CallResult(call_id, NUMBER, CallStatus.FAILED.value, None, "")
    session = await JanusSession(socket).open()
    handle = SipHandle(session)
    try:
        await handle.attach()
        await handle.register_credentials(lab_account(cfg))
        started = time.time()
        offer = await media.offer()
        headers = {CALL_HEADER: call_id, ANSWER_HEADER: NOW.header_value()}
        uri = f"sip:{NUMBER}@{cfg.sipserver.host}:{cfg.sipserver.sip_port}"
        await handle.message(
            {"request": "call", "uri": uri, "headers": headers}, {"type": "offer", "sdp": offer}
        )
        answered = False
        while True:
            event = await handle.next_event()
            if event.sdp and not answered:  # early media (183) or the 200's answer
                await media.take_answer(event.sdp)
                answered = True
            if event.event == "accepted":
                result.statuses.append({"status": CallStatus.ESTABLISHED.value, "t": event.t})
                result.setup_ms = round((event.t - started) * 1000, 1)
                break
            if event.event == "hangup":
                result.sip_code, result.reason = event.data.get("code"), str(event.data.get("reason"))
                return result
        try:
            ended = await handle.wait_for("hangup", talk)
        except TimeoutError:  # talked for the whole time: hang up
            await handle.message({"request": "hangup"})
            ended = await handle.wait_for("hangup", HANGUP_TIMEOUT)
            result.final_status = CallStatus.FINISH.value
        else:
            result.sip_code = ended.data.get("code")
            result.reason = f"the far end hung up after {ended.t - started:.1f} s: {ended.data.get('reason')}"
        result.statuses.append({"status": result.final_status, "t": ended.t})
    finally:
        await media.close()
        await handle.detach()
        await session.close()
    result.phone = await phone_report(cfg, cfg.phone_for(NUMBER), call_id)
    if result.setup_ms is not None and result.phone.get("answer_delay") is not None:
        result.setup_ms = round(result.setup_ms - result.phone["answer_delay"] * 1000, 1)
    result.audio = {
        name: str(folder / f"{name}.wav") if (folder / f"{name}.wav").exists() else None
        for name in ("browser_sent", "browser_received", "phone_sent", "phone_received")
    }
    result.timing = {"browser_sent_t0": media.mic.started_at if media.mic else None}
    result.timing["browser_received_t0"] = media.heard.started_at
    return result


async def cpu_share(pids: list[int], after: float, window: float) -> float:
    """The processes' share of a core over `window` s, from `after` s on."""
    await asyncio.sleep(after)
    return await asyncio.to_thread(share, pids, window)


async def one_round(
    cfg: LabConfig, path: str, pids: list[int], place: PlaceCall, n: int, talk: float
) -> Round:
    idle = await cpu_share(pids, 0.0, IDLE_S)
    cpu_task = asyncio.ensure_future(cpu_share(pids, SETTLE_S, talk - SETTLE_S - 1.0))
    calls = await asyncio.gather(*(place(cfg, talk) for _ in range(n)))
    cpu = await cpu_task
    print(
        f"{path:<8} {n} at once: gateway CPU {cpu * 100:.1f}% of a core (idle {idle * 100:.1f}%), "
        f"setup {[r.setup_ms for r in calls]} ms",
        flush=True,
    )
    for r in calls:
        if not r.ok:  # its CPU share stays in the round's; its audio is left out
            print(f"  call {r.call_id} failed: {r.final_status} {r.sip_code} {r.reason}", flush=True)
    return Round(path, n, [r for r in calls if r.ok], cpu, idle)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


QUALITY = {  # bench/call_path.py's measures: label, scale
    "latency_b2p": ("delay browser -> phone ms", 1000.0),
    "latency_p2b": ("delay phone -> browser ms", 1000.0),
    "pesq_b2p": ("PESQ browser -> phone", 1.0),
    "pesq_p2b": ("PESQ phone -> browser", 1.0),
}


def table(cfg: LabConfig, rounds: list[Round], floors: dict[int, float]) -> None:
    """Each measure's median per path, per number of calls at once, and their ratio."""
    measures = ["setup ms", *(label for label, _ in QUALITY.values()), "CPU % per call"]
    steps = sorted({rnd.n for rnd in rounds})
    labels = [f"{m}, {n} at once" for n in steps for m in measures] + ["CPU % idle"]
    values: dict[str, dict[str, list[float]]] = {label: {p: [] for p in PATHS} for label in labels}
    for rnd in rounds:

        def add(measure: str, value: float, rnd: Round = rnd) -> None:
            values[f"{measure}, {rnd.n} at once"][rnd.path].append(value)

        add("CPU % per call", rnd.per_call * 100)
        values["CPU % idle"][rnd.path].append(rnd.idle * 100)
        for r in rnd.results:
            if r.setup_ms is not None:
                add("setup ms", r.setup_ms)
            try:
                measured = quality(cfg, r)
            except (AssertionError, ValueError, RuntimeError) as exc:  # no recording, or one of silence
                print(f"call {r.call_id}: no delay or PESQ: {exc}")
                continue
            for key, (label, scale) in QUALITY.items():
                add(label, measured[key] * scale)
    calls = {p: sum(len(rnd.results) for rnd in rounds if rnd.path == p) for p in PATHS}
    counts = f"{calls['calllab']} calllab, {calls['Janus']} Janus"
    print(f"\nbrowser leg {CODEC.upper()}, medians over the calls that held ({counts})")
    print(f"{'':<36} {'calllab':>9} {'Janus':>9} {'calllab/Janus':>14}")
    for label, by_path in values.items():
        ours, theirs = (_median(by_path[p]) for p in PATHS)
        ratio = f"{ours / theirs:14.2f}" if ours is not None and theirs else f"{'-':>14}"
        print(f"{label:<36} {_fmt(ours)} {_fmt(theirs)} {ratio}")
    print("\nCPU % per call of a bare Python relay with SRTP (bench/relay_floor.py), same run:")
    for n, floor in sorted(floors.items()):
        per_call = {p: _median([r.per_call for r in rounds if r.path == p and r.n == n]) for p in PATHS}
        ratios = ", ".join(f"{p}/floor {v / floor:.2f}" for p, v in per_call.items() if v and floor)
        print(f"  {n} at once: {floor * 100:.2f} ({ratios})")


def _fmt(value: float | None) -> str:
    return f"{'-':>9}" if value is None else f"{value:9.2f}"


async def bench(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="calllab-peers-"))
    try:
        async with Stack(dataclasses.replace(LabConfig(), home=home), first_free=True) as stack:
            cfg = stack.cfg
            gateway = [p.proc.pid for p in stack.processes(cfg.gateway.name) if p.proc is not None]
            folder = cfg.run_dir / "janus"
            async with JanusProcess(JanusConfig(folder / "api.sock"), folder) as janus:
                paths: dict[str, tuple[list[int], PlaceCall]] = {
                    "calllab": (gateway, calllab_call),  # its front and its workers
                    "Janus": ([janus.pid], janus_caller(janus.cfg.socket)),
                }
                rounds = []
                for _ in range(args.rounds):
                    for n in args.concurrency:
                        for path, (pids, place) in paths.items():
                            rounds.append(await one_round(cfg, path, pids, place, n, args.talk))
                window = args.talk - SETTLE_S - 1.0
                floors = {
                    n: await asyncio.to_thread(per_call_share, n, window, "srtp") for n in args.concurrency
                }
                table(cfg, rounds, floors)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4], help="calls at once, per step")
    parser.add_argument("--rounds", type=int, default=1, help="times each step is run on each path")
    parser.add_argument("--talk", type=float, default=10.0, help="seconds of talk per call")
    args = parser.parse_args()
    if args.talk < SETTLE_S + 3:
        parser.error(f"--talk must be at least {SETTLE_S + 3:g} s (the CPU window opens {SETTLE_S:g} s in)")
    logging.basicConfig(level=logging.WARNING)
    freeze_startup_heap()  # this process is the calls' client
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
