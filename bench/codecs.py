"""Each SIP leg codec and each mobile leg codec in an unimpaired call: PESQ against the
same prompt offline through the same codec chain (the ceiling), and the gateway's CPU.

    make bench-codecs, or: .venv/bin/python bench/codecs.py [--talk 8] [--repeat 1] [--wideband]

SIP codecs are measured with the default mobile codec (GSM), mobile codecs with the default
SIP codec (PCMU); the browser leg is Opus. --wideband runs a 16 kHz lab instead and measures
the wideband chains (and G.711 > GSM for comparison) with wideband PESQ (P.862.2).

Gateway CPU is its share of a core during the call's talk, above what it uses idle: the
gateway transcodes Opus <-> the SIP codec, so the SIP codec is what moves it. Numbers, not
verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time

from call_path import NOW, NUMBER, audio_of, cpu_seconds

from lab.analysis.ceiling import through_chain
from lab.audio import pesq_nb, pesq_wb, read_wav
from lab.config import NARROWBAND, WIDEBAND, LabConfig
from lab.scenario import CallResult, place_call
from lab.sip.codecs import LEG_CODECS
from lab.stack import Stack


async def one_call(stack: Stack, sip: str, mobile: str, talk: float, pid: int) -> tuple[CallResult, float]:
    """The call, and the gateway's CPU (share of a core) over its talk but the first and
    last second."""
    window = max(1.0, talk - 3.0)

    async def measure() -> float:
        await asyncio.sleep(2.0)  # set up, answered, media flowing
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window)
        return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)

    call = place_call(
        stack.cfg, NUMBER, duration=talk, answer=NOW, sip_codec=sip, mobile_codec=mobile, report=False
    )
    result, cpu = await asyncio.gather(call, measure())
    return result, cpu


#: A wideband lab's chains: each wideband SIP codec, each wideband mobile codec, and the
#: default narrowband chain to show what P.862.2 makes of 4 kHz.
WIDEBAND_CASES = [("G722", "G722"), ("SPEEX16", "SPEEX16"), ("SPEEX32", "G722"), ("PCMU", "GSM")]


async def bench(args: argparse.Namespace) -> None:
    if args.wideband:
        cases, score, rate = WIDEBAND_CASES, pesq_wb, WIDEBAND
    else:
        cases = [(sip, "GSM") for sip in LEG_CODECS["sip"]]
        cases += [("PCMU", mobile) for mobile in LEG_CODECS["mobile"] if ("PCMU", mobile) not in cases]
        score, rate = pesq_nb, NARROWBAND
    if args.cases:
        pairs = (case.upper().partition("/") for case in args.cases.split(","))
        cases = [(sip, mobile) for sip, _, mobile in pairs]
    async with Stack(dataclasses.replace(LabConfig(), audio_rate=rate)) as stack:
        cfg = stack.cfg
        browser, _ = read_wav(cfg.prompts_dir / "browser.wav")
        phone, _ = read_wav(cfg.prompts_dir / "phone.wav")
        gateway = next(p for p in stack.parties if p.party is cfg.gateway)
        assert gateway.proc is not None
        pid = gateway.proc.pid
        c0 = cpu_seconds(pid)
        await asyncio.sleep(args.window)
        idle = (cpu_seconds(pid) - c0) / args.window
        print(
            f"{rate} Hz lab, {score.__name__}; gateway idle: {idle * 100:.1f}% of a core; "
            f"talk {args.talk:g} s, {args.repeat} call(s) per case"
        )
        header = (
            f"{'SIP':<8} {'mobile':<7} {'b->p live':>9} {'ceiling':>7} {'diff':>6} "
            f"{'p->b live':>9} {'ceiling':>7} {'diff':>6} {'gw CPU/call':>11} {'vs PCMU':>7}"
        )
        print(header)
        base_cpu = None
        for sip, mobile in cases:
            b2p, p2b, cpus = [], [], []
            for _ in range(args.repeat):
                await asyncio.sleep(1.0)  # the last call is torn down everywhere
                result, cpu = await one_call(stack, sip, mobile, args.talk, pid)
                assert result.ok, f"{sip}/{mobile}: {result.final_status} {result.sip_code} {result.reason}"
                b2p.append(score(browser, audio_of(result, "phone_received", rate)))
                p2b.append(score(phone, audio_of(result, "browser_received", rate)))
                cpus.append(cpu - idle)
            chain = ["opus", sip.lower(), mobile.lower()]
            sip_legs = (False, True, True)  # the browser leg is Opus through FFmpeg; the others pjmedia
            ceil_b2p = score(browser, through_chain(browser, chain, rate, sip_legs))
            ceil_p2b = score(phone, through_chain(phone, chain[::-1], rate, sip_legs[::-1]))
            live_b2p, live_p2b, cpu = statistics.median(b2p), statistics.median(p2b), statistics.median(cpus)
            base_cpu = base_cpu if base_cpu is not None else cpu if sip == "PCMU" else None
            ratio = f"{cpu / base_cpu:7.2f}" if base_cpu else f"{'-':>7}"
            print(
                f"{sip:<8} {mobile:<7} {live_b2p:9.2f} {ceil_b2p:7.2f} {live_b2p - ceil_b2p:+6.2f} "
                f"{live_p2b:9.2f} {ceil_p2b:7.2f} {live_p2b - ceil_p2b:+6.2f} {cpu * 100:10.1f}% {ratio}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--talk", type=float, default=8.0, help="seconds each call talks (the prompt is ~6.6 s)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="calls per case (medians)")
    parser.add_argument("--window", type=float, default=4.0, help="idle CPU window, s")
    parser.add_argument("--wideband", action="store_true", help="a 16 kHz lab, its chains, P.862.2")
    parser.add_argument("--cases", help="only these SIP/MOBILE codec pairs, e.g. g722/g722,pcmu/gsm")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
