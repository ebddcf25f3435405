"""`calllab up | down | status | call NUMBER | browser-call NUMBER | analyze CAPTURE | report CAPTURE`.

Commands import what they need when they run: `calllab analyze` should not pay for aiortc
and pjsua2, nor `calllab status` for matplotlib.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lab.config import (
    BROWSER_CODECS,
    CALLS_PER_PROCESS,
    INSTANCES,
    MAX_CALLS_AT_ONCE,
    NARROWBAND,
    WIDEBAND,
    LabConfig,
    LabError,
    PhonePolicy,
    lab_of_capture,
    requested_instance,
)
from lab.network.impairment import ImpairmentError
from lab.network.legs import plan, profiles_help
from lab.numbers import InvalidNumber, normalize_number
from lab.process import freeze_startup_heap
from lab.sip.codecs import LEG_CODECS, CodecError, choose, default_offer

if TYPE_CHECKING:
    from lab.analysis.model import CallModel
    from lab.client import Call
    from lab.jitterspec import JitterBufferSpec
    from lab.scenario import CallResult
    from lab.webrtc import BrowserAudio


def cmd_up(args: argparse.Namespace) -> int:
    from lab.stack import chosen_config, running_config, start_daemon

    running = running_config()
    if running is not None:
        print(f"the lab is already up (instance {running.instance}); `calllab status` shows it")
        return 0
    t0 = time.monotonic()
    rate = WIDEBAND if args.wideband else NARROWBAND
    cfg = dataclasses.replace(chosen_config(), audio_rate=rate, passthrough=not args.transcode)
    reply = start_daemon(cfg.carrying(args.capacity) if args.capacity else cfg)
    print(
        f"lab up in {time.monotonic() - t0:.2f} s (parties ready in {reply['ready_s']:.2f} s), "
        f"instance {reply['instance']}"
    )
    return _show_lab(LabConfig().at(reply["instance"]))


def _labs_meant() -> list[LabConfig]:
    """The labs `down` and `status` are about: the one --instance names, else every lab running
    under this home."""
    from lab.stack import chosen_config, running_labs

    if requested_instance() is not None:
        return [chosen_config()]
    return running_labs()


def cmd_down(args: argparse.Namespace) -> int:
    from lab.stack import stop_daemon

    stopped = [cfg.instance for cfg in _labs_meant() if stop_daemon(cfg)]
    for instance in stopped:
        print(f"lab stopped (instance {instance})")
    if not stopped:
        print("no lab was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lab.stack import chosen_config

    labs = _labs_meant() or [chosen_config()]
    return max([_show_lab(cfg) for cfg in labs])


def _show_lab(cfg: LabConfig) -> int:
    import asyncio

    from lab.stack import health, read_state, running_config

    cfg = running_config(cfg) or cfg
    rows = asyncio.run(health(cfg))
    up = read_state(cfg) is not None
    band = ", wideband audio, 16 kHz" if up and cfg.wideband else ""
    print(f"lab is {'up' if up else 'down'} (instance {cfg.instance}, state in {cfg.run_dir}{band})")
    print(f"{'party':<17} {'address':<28} {'pid':>7}  health")
    print(f"{cfg.browser.name:<17} {cfg.browser.host:<28} {'-':>7}  (the client: this process)")
    if up:
        from lab.gateway.page import url

        print(f"{'Phone page':<17} {url(cfg):<28} {'-':>7}  (open it in a browser on this machine)")
    for row in rows:
        pid = row["pid"] or "-"
        print(
            f"{row['party']:<17} {row['address']:<28} {pid:>7}  {'ok' if row['healthy'] else 'not answering'}"
        )
    for row in rows:
        for death in row["deaths"]:
            when = time.strftime("%H:%M:%S", time.localtime(death["t"]))
            then = "restarted" if death["restarted"] else "left down"
            print(f"{row['party']} (pid {death['pid']}) died at {when}: {death['how']}; {then}")
    return 0 if not up or all(r["healthy"] for r in rows) else 1


def _print_status(call: Call, stream: object) -> None:
    from lab.signaling import status_text

    line = status_text(call.status, call.sip_code, call.reason)
    print(f"{time.strftime('%H:%M:%S')} {line}", file=stream, flush=True)  # type: ignore[call-overload]


async def _call(args: argparse.Namespace) -> CallResult:
    from lab.scenario import place_call

    answer = args.answer
    if args.answer_after is not None:
        answer = PhonePolicy("answer", args.answer_after)
    stream = sys.stderr if args.json else sys.stdout
    kwargs = {
        "duration": args.duration,
        "answer": answer,
        "audio": args.audio,
        "password": args.password,
        "on_status": lambda call: _print_status(call, stream),
        "dtmf": args.dtmf,
        "dtmf_method": args.dtmf_method,
        "hold": args.hold,
        "transfer": args.transfer,
        "attended": args.attended,
        "impairments": args.impairments,
        "sip_codec": args.sip_codec,
        "mobile_codec": args.mobile_codec,
        "video": args.video,
    }
    try:
        normalize_number(args.number)
    except InvalidNumber:
        # place_call refuses it before anything is contacted: no lab needed for that answer.
        return await place_call(LabConfig(), args.number)
    return await _on_a_lab(lambda cfg: place_call(cfg, args.number, **kwargs), stream)  # type: ignore[arg-type]


async def _dial_in(args: argparse.Namespace) -> CallResult:
    from lab.scenario import receive_call

    stream = sys.stderr if args.json else sys.stdout
    kwargs = {
        "caller": args.caller,
        "answer_after": args.answer_after,
        "duration": args.duration,
        "reject": args.reject,
        "on_status": lambda call: _print_status(call, stream),
    }
    return await _on_a_lab(lambda cfg: receive_call(cfg, **kwargs), stream)  # type: ignore[arg-type]


async def _on_a_lab(run: Callable[[LabConfig], Awaitable[CallResult]], stream: object) -> CallResult:
    """`run` on the lab that is up, else on one started for it (and stopped after)."""
    from lab.stack import Stack, running_config

    cfg = running_config()
    if cfg is not None:
        return await run(cfg)
    print("starting the lab for this call", file=stream, flush=True)  # type: ignore[call-overload]
    async with Stack() as stack:
        return await run(stack.cfg)


async def _browser_call(args: argparse.Namespace) -> CallResult:
    from lab.chromium import browser_call

    stream = sys.stderr if args.json else sys.stdout
    kwargs = {
        "duration": args.duration,
        "dtmf": args.dtmf,
        "hold": args.hold,
        "transfer": args.transfer,
        "password": args.password,
        "video": args.video,
        "on_status": lambda call: _print_status(call, stream),
    }
    return await _on_a_lab(lambda cfg: browser_call(cfg, args.number, **kwargs), stream)  # type: ignore[arg-type]


def cmd_browser_call(args: argparse.Namespace) -> int:
    import asyncio

    from lab.chromium import ChromiumUnavailable, check_chromium
    from lab.scenario import CallResult

    normalize_number(args.number)
    try:
        check_chromium()
        result = asyncio.run(_browser_call(args))
    except (LabError, ChromiumUnavailable) as exc:
        if not args.json:
            raise
        result = CallResult("", args.number, "FAILED", None, f"the call could not start: {exc}")
    return _report_call(result, args.json)


def cmd_dial_in(args: argparse.Namespace) -> int:
    import asyncio

    if args.caller is not None:
        normalize_number(args.caller)
    return _report_call(asyncio.run(_dial_in(args)), args.json)


def cmd_call(args: argparse.Namespace) -> int:
    import asyncio

    from lab.scenario import CallResult

    if args.attended and not args.transfer:
        print("calllab call: --attended needs --transfer NUMBER", file=sys.stderr)
        return 2
    args.impairments = plan(args.impair, args.network)
    for leg, option in (("sip", "--sip-codec"), ("mobile", "--mobile-codec")):
        name = getattr(args, f"{leg}_codec")
        if name is not None:
            choose(leg, name, option)
    try:
        args.audio = _browser_audio(args)
    except ValueError as exc:
        print(f"calllab call: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_call(args))
    except LabError as exc:
        if not args.json:
            raise
        result = CallResult("", args.number, "FAILED", None, f"the lab could not start: {exc}")
    return _report_call(result, args.json)


def _report_call(result: CallResult, as_json: bool) -> int:
    from lab.signaling import status_text

    if as_json:
        print(result.to_json())
    else:
        if result.setup_ms is not None:
            print(f"setup {result.setup_ms:.1f} ms")
        if result.final_status not in ("FINISH",):
            print(f"call {status_text(result.final_status, result.sip_code, result.reason)}")
        for name, path in result.audio.items():
            if path:
                print(f"{name:<17} {path}")
        if result.capture:
            print(f"{'capture':<17} {result.capture}")
        if result.report:
            print(f"{'report':<17} {result.report}")
        if result.capture_error:
            print(f"no capture: {result.capture_error}")
        for row in result.impairments:
            did = f"{row['packets']} packets, {row['dropped']} dropped, {row['duplicated']} duplicated"
            print(f"{row['network']} {row['direction']:<10} {row['spec'] or 'perfect'}: {did}")
            if row.get("error"):
                print(f"  {row['error']}")
    return 0 if result.ok else 1


def cmd_analyze(args: argparse.Namespace) -> int:
    from lab.analysis.columns import model_json
    from lab.analysis.recorded_call import analyze

    model = analyze(args.capture, _capture_lab(args.capture))
    if args.json:
        print(json.dumps(model_json(model), indent=2))
    else:
        _print_summary(model)
    return _cut_short(model)


def _capture_lab(capture: str) -> LabConfig:
    """The lab whose party names a capture's addresses get: --instance's, else the lab whose
    captures dir holds it."""
    instance = requested_instance()
    return LabConfig().at(instance) if instance is not None else lab_of_capture(Path(capture))


def _cut_short(model: CallModel) -> int:
    """Exit 3, with one line, when the capture ends or is damaged inside a packet."""
    if not model.truncated:
        return 0
    print(
        f"calllab: {model.source}: the file is cut short or damaged inside a packet (shown: all before it)",
        file=sys.stderr,
    )
    return 3


def _print_summary(model: CallModel) -> None:
    from lab.analysis.columns import summary

    print(
        f"{model.source}: {len(model.messages)} SIP messages, {len(model.dialogs)} dialogs in "
        f"{len(model.calls)} calls, {len(model.streams)} RTP streams"
    )
    for m in model.messages:
        again = " (retransmission)" if m.retransmission else ""
        print(f"  {m.t:9.3f} s  {m.src_party:>22} -> {m.dst_party:<22} {m.label}{again}")
    for s in model.streams:
        print(f"  RTP {summary(s)}")
    for p in model.pesq:
        print(f"  PESQ {p.direction}: {p.mos_lqo:.2f} (ceiling {p.ceiling}, {p.scale})")


def cmd_report(args: argparse.Namespace) -> int:
    from lab.analysis.recorded_call import analyze
    from lab.report import write as write_report

    model = analyze(args.capture, _capture_lab(args.capture))
    out = Path(args.output) if args.output else Path(args.capture).with_suffix(".html")
    print(write_report(model, out))
    return _cut_short(model)


def cmd_clean(args: argparse.Namespace) -> int:
    from lab.capture import disk_use, prune, stored_calls
    from lab.stack import chosen_config

    cfg = chosen_config()
    keep = cfg.keep_calls if args.keep is None else args.keep
    max_mb = cfg.keep_mb if args.max_mb is None else args.max_mb
    removed = prune(cfg.captures_dir, keep, max_mb)
    left = stored_calls(cfg.captures_dir)
    size = disk_use([p for paths in left.values() for p in paths])
    print(f"removed {len(removed)} calls; {cfg.captures_dir} keeps {len(left)} calls, {size / 1e6:.1f} MB")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import asyncio

    from lab import sweep as sw
    from lab.batch import Progress
    from lab.stack import running_config

    codecs = tuple((a.option, sw.split(v)) for a in sw.CODEC_AXES if (v := getattr(args, a.keyword)))
    values = tuple((p.name, sw.split(v)) for p in sw.PARAMETERS if (v := getattr(args, p.name)))
    cfg = running_config() or LabConfig()
    parallel = sw.default_parallel(cfg) if args.parallel is None else args.parallel
    try:
        if values and args.leg is None:
            raise sw.SweepError("--leg: the leg the impairment is on: one of browser, sip, mobile")
        if not 1 <= parallel <= cfg.calls_at_once:
            raise sw.SweepError(
                f"--parallel {parallel}: 1 to {cfg.calls_at_once} (the calls the lab carries at once)"
            )
        sweep = sw.Sweep(
            args.number,
            args.leg or "mobile",
            args.direction,
            codecs,
            values,
            args.repeat,
            args.seed,
            args.duration,
        )
        points = sweep.points()
    except sw.SweepError as exc:
        print(f"calllab sweep: {exc}", file=sys.stderr)
        return 2
    html = (
        Path(args.output)
        if args.output
        else cfg.captures_dir / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.html"
    )
    results = sw.Results(html.with_suffix(".csv"))
    progress = Progress(len(points))
    print(f"sweep: {len(points)} calls, {parallel} at once", file=sys.stderr, flush=True)
    code = 0
    try:
        asyncio.run(sw.run_in_lab(sweep, points, results, parallel, progress.update))
    except KeyboardInterrupt:
        code = 130
    except LabError as exc:
        print(f"calllab: {exc}", file=sys.stderr)
        code = 2
    finally:
        results.close()
    for line in sw.summary(results.rows, len(points)):
        print(line, file=sys.stderr)
    sw.write_report(sweep, results.rows, html, len(points))
    print(f"report {html}\nrows   {results.csv_path}", file=sys.stderr)
    if args.json:
        print(results.json())
    return code or (1 if results.failed or len(results.rows) < len(points) else 0)


def cmd_load(args: argparse.Namespace) -> int:
    import asyncio

    from lab import load as ld
    from lab.batch import Progress

    try:
        load = ld.Load(args.number, args.calls, args.concurrency, args.rate, args.duration, args.codec)
    except ld.LoadError as exc:
        print(f"calllab load: {exc}", file=sys.stderr)
        return 2
    load_run = ld.LoadRun(load)
    progress = Progress(load.calls)
    code = 0
    try:
        asyncio.run(ld.run_in_lab(load_run, progress.update))
    except KeyboardInterrupt:
        code = 130
    except LabError as exc:
        print(f"calllab: {exc}", file=sys.stderr)
        return 2
    summary = load_run.summary()
    if args.json:
        print(json.dumps({"summary": summary, "calls": load_run.ordered}, indent=2))
    else:
        print("\n".join(ld.summary_lines(summary)))
    return code or (0 if summary["successful"] == load.calls else 1)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _capacity(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_CALLS_AT_ONCE:
        raise argparse.ArgumentTypeError(f"calls at once: 1 to {MAX_CALLS_AT_ONCE}, not {value}")
    return value


def _megabytes(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _browser_audio(args: argparse.Namespace) -> BrowserAudio:
    from lab.jitterspec import DEFAULT_SPEC
    from lab.webrtc import BrowserAudio

    return BrowserAudio(
        args.codec,
        opus_bitrate=args.opus_bitrate,
        opus_fec=args.opus_fec == "on",
        jitter_buffer=args.jitter_buffer or DEFAULT_SPEC,
    )


def _kbit(text: str) -> int:
    """kbit/s on the command line, bit/s inside."""
    try:
        kbit = float(text)
    except ValueError:
        kbit = -1.0
    if not 6 <= kbit <= 510:
        raise argparse.ArgumentTypeError(f"Opus bitrate in kbit/s, from 6 to 510, not {text!r}")
    return round(kbit * 1000)


def _jitter_buffer(text: str) -> JitterBufferSpec:
    from lab.jitterspec import JitterBufferSpec

    try:
        return JitterBufferSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instance(text: str) -> int:
    if not text.isdigit() or int(text) not in INSTANCES:
        raise argparse.ArgumentTypeError(
            f"a lab instance, {INSTANCES.start} to {INSTANCES.stop - 1}, not {text!r}"
        )
    return int(text)


def _policy(text: str) -> PhonePolicy:
    try:
        return PhonePolicy.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """calllab's arguments; given the command about to run, a capture's (analyze, report)
    has only its own: the others' cost imports (lab.sweep) and the lab's config."""
    p = argparse.ArgumentParser(prog="calllab", description="SIP/WebRTC call lab on loopback")
    sub = p.add_subparsers(dest="command", required=True)
    lab = argparse.ArgumentParser(add_help=False)
    lab.add_argument(
        "--instance",
        type=_instance,
        default=None,
        metavar="N",
        help="the lab on 127.0.N.x (default: $CALLLAB_INSTANCE, else the lab you started, "
        "else the first free one)",
    )
    if command in ("analyze", "report"):
        _capture_parsers(sub, lab)
        return p
    up = sub.add_parser("up", parents=[lab], help="start the lab in the background")
    up.add_argument(
        "--wideband",
        action="store_true",
        help="run the lab's audio at 16 kHz (HD voice: G.722/Speex 16 end to end, P.862.2 PESQ)",
    )
    up.add_argument(
        "--capacity",
        type=_capacity,
        default=None,
        metavar="N",
        help=f"calls at once the lab carries: N PSTN channels, N/{CALLS_PER_PROCESS} gateway workers "
        f"and phone processes (default {CALLS_PER_PROCESS} a core: {LabConfig().calls_at_once} here)",
    )
    up.add_argument(
        "--transcode",
        action="store_true",
        help="carry every call's audio through the gateway's conference bridge (decoded, mixed "
        "and re-encoded on pjsua's clock), also a G.711 call that it would relay untouched "
        "(passthrough) and an Opus call that it would transcode a packet at a time (Opus relay)",
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", parents=[lab], help="stop the lab (every lab you started)").set_defaults(
        func=cmd_down
    )
    sub.add_parser("status", parents=[lab], help="instance, parties, addresses, PIDs, health").set_defaults(
        func=cmd_status
    )
    call = sub.add_parser("call", parents=[lab], help="call a number from the browser-style client")
    call.add_argument("number", help="e.g. +79991234567 or 89991234567")
    call.add_argument("--duration", type=float, default=5.0, help="seconds to talk (default 5)")
    call.add_argument("--answer-after", type=float, default=None, help="phone answers after S seconds")
    call.add_argument(
        "--answer",
        type=_policy,
        default=None,
        metavar="after:S|busy|reject|never",
        help="what the phone does with this call (default: the lab config's policy, after:1)",
    )
    call.add_argument("--dtmf", default="", help="DTMF digits to send once established (0-9 * # A-D)")
    call.add_argument("--dtmf-method", choices=["rfc4733", "info"], default="rfc4733")
    call.add_argument(
        "--hold", type=float, default=0.0, metavar="S", help="hold the call for S seconds, then resume"
    )
    call.add_argument("--codec", choices=list(BROWSER_CODECS), default="opus", help="WebRTC leg codec")
    call.add_argument(
        "--video",
        action="store_true",
        help="a video call: offer video too (VP8, H.264; a mobile phone declines it: voice only)",
    )
    call.add_argument(
        "--opus-bitrate",
        type=_kbit,
        default=None,
        metavar="KBIT",
        help="Opus bitrate both ways on the browser leg, 6-510 kbit/s (default: aiortc's 96)",
    )
    call.add_argument(
        "--opus-fec", choices=["on", "off"], default="off", help="Opus in-band FEC on the browser leg"
    )
    call.add_argument(
        "--jitter-buffer",
        type=_jitter_buffer,
        default=None,
        metavar="fixed:MS|adaptive:MIN-MAX",
        help="how long the browser leg's receivers wait for a missing packet (default adaptive:0-200)",
    )
    for leg, where in (("sip", "gateway <-> PSTN gateway"), ("mobile", "PSTN gateway <-> phone")):
        choices = ", ".join(c.lower() for c in LEG_CODECS[leg])
        default = default_offer(LabConfig(), leg)[0].lower()
        call.add_argument(
            f"--{leg}-codec", metavar="CODEC", help=f"{where} codec: {choices} (default {default})"
        )
    call.add_argument("--password", default=None, help="log in with this password instead of the lab's")
    call.add_argument(
        "--impair",
        action="append",
        default=[],
        metavar="LEG:DIRECTION:SPEC",
        help="impair one leg's network (repeatable): LEG browser|sip|mobile, DIRECTION "
        "to-phone|to-browser|both, SPEC e.g. loss=5%%,burst=3,delay=80ms,jitter=30ms,"
        "reorder=off,dup=0.5%%,rate=64kbit,seed=7",
    )
    call.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="PROFILE[@LEG]",
        help=f"a named network on one leg (or all): {profiles_help()}".replace("%", "%%"),
    )
    call.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    call.add_argument(
        "--transfer", default="", metavar="NUMBER", help="blind-transfer the phone to NUMBER (REFER)"
    )
    call.add_argument(
        "--attended",
        action="store_true",
        help="with --transfer: hold, call NUMBER first, then transfer to that call (REFER with Replaces)",
    )
    call.set_defaults(func=cmd_call)
    dial_in = sub.add_parser(
        "dial-in", parents=[lab], help="the lab's mobile phone calls the browser user, who answers"
    )
    dial_in.add_argument(
        "caller", nargs="?", default=None, help="the phone's number (caller id; default: the lab config's)"
    )
    dial_in.add_argument(
        "--answer-after", type=float, default=0.5, help="the browser answers after S seconds"
    )
    dial_in.add_argument("--reject", type=int, default=None, metavar="CODE", help="refuse with 603 or 486")
    dial_in.add_argument("--duration", type=float, default=3.0, help="seconds to talk")
    dial_in.add_argument("--json", action="store_true", help="one JSON object on stdout")
    dial_in.set_defaults(func=cmd_dial_in)
    browser = sub.add_parser(
        "browser-call", parents=[lab], help="call a number from Chromium on the lab's Phone page"
    )
    browser.add_argument("number", help="e.g. +79991234567 or 89991234567")
    browser.add_argument("--duration", type=float, default=5.0, help="seconds to talk (default 5)")
    browser.add_argument("--dtmf", default="", help="digits to press on the page's keypad once established")
    browser.add_argument(
        "--hold", type=float, default=0.0, metavar="S", help="press Hold for S seconds, then Unhold"
    )
    browser.add_argument(
        "--transfer", default="", metavar="NUMBER", help="blind-transfer the phone to NUMBER"
    )
    browser.add_argument("--password", default=None, help="log in with this password instead of the lab's")
    browser.add_argument(
        "--video",
        action="store_true",
        help="press Video call: Chromium's test-pattern camera too (a mobile phone declines it: voice only)",
    )
    browser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    browser.set_defaults(func=cmd_browser_call)
    _sweep_parser(sub, lab)
    _capture_parsers(sub, lab)
    clean = sub.add_parser(
        "clean", parents=[lab], help="remove the oldest calls from captures/ (done after every call too)"
    )
    clean.add_argument("--keep", type=_count, help="calls to keep (default: keep_calls)")
    clean.add_argument(
        "--max-mb", type=_megabytes, help="MB the kept calls may take (default: keep_mb, 1000)"
    )
    clean.set_defaults(func=cmd_clean)
    return p


def _capture_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], lab: argparse.ArgumentParser
) -> None:
    analyze_cmd = sub.add_parser(
        "analyze", parents=[lab], help="SIP ladder and RTP statistics of any capture"
    )
    analyze_cmd.add_argument("capture", help="pcap or pcapng file")
    analyze_cmd.add_argument("--json", action="store_true", help="one JSON object on stdout")
    analyze_cmd.set_defaults(func=cmd_analyze)
    report_cmd = sub.add_parser(
        "report", parents=[lab], help="write a self-contained HTML report of a capture"
    )
    report_cmd.add_argument("capture", help="pcap or pcapng file")
    report_cmd.add_argument("-o", "--output", help="HTML file (default: next to the capture)")
    report_cmd.set_defaults(func=cmd_report)


def _sweep_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], lab: argparse.ArgumentParser
) -> None:
    from lab.sweep import CODEC_AXES, PARAMETERS

    load = sub.add_parser(
        "load",
        parents=[lab],
        help="many full-chain calls at once, summarised as SIPp does (attempted, failed, setup times)",
    )
    load.add_argument("number", help="the number every call dials, e.g. +79001234567")
    load.add_argument("--calls", type=_count, default=10, help="calls to place (default 10)")
    load.add_argument("--concurrency", type=_count, default=2, help="calls at once at most (default 2)")
    load.add_argument(
        "--rate", type=_positive, default=None, help="calls started per second at most (default: no limit)"
    )
    load.add_argument("--duration", type=_positive, default=5.0, help="seconds of talk per call (default 5)")
    load.add_argument(
        "--codec",
        choices=list(BROWSER_CODECS),
        default="opus",
        help="WebRTC leg codec (default opus; pcmu and pcma are relayed untouched by the gateway)",
    )
    load.add_argument("--json", action="store_true", help="summary and a row per call as JSON on stdout")
    load.set_defaults(func=cmd_load)

    sweep = sub.add_parser(
        "sweep",
        parents=[lab],
        help="a grid of calls (codecs x impairment values x repeats) in parallel: CSV, JSON, HTML report",
    )
    sweep.add_argument("--number", required=True, help="the number every call dials")
    for axis in CODEC_AXES:
        sweep.add_argument(
            f"--{axis.option}",
            dest=axis.keyword,
            metavar="A,B",
            help=f"{axis.help}: {', '.join(axis.choices)}",
        )
    sweep.add_argument("--leg", default=None, metavar="LEG", help="the impaired leg: browser, sip or mobile")
    sweep.add_argument("--direction", default="both", help="to-phone, to-browser or both (default)")
    for p in PARAMETERS:
        sweep.add_argument(
            f"--{p.name}", metavar="V,W", help=f"{p.name} values ({p.unit})".replace("%", "%%")
        )
    sweep.add_argument("--repeat", type=_count, default=1, help="calls per grid point, each its own seed")
    sweep.add_argument("--seed", type=int, default=1, help="seed of the first repeat (default 1)")
    sweep.add_argument("--duration", type=float, default=5.0, help="seconds of talk per call (default 5)")
    sweep.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="calls at once, at most 4 (default: the lab's 4 or the machine's cores if fewer)",
    )
    sweep.add_argument(
        "-o", "--output", help="HTML report (default captures/sweep-<time>.html); the CSV beside it"
    )
    sweep.add_argument("--json", action="store_true", help="the rows as one JSON array on stdout")
    sweep.set_defaults(func=cmd_sweep)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `calllab analyze x | head` ends quietly
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("analyze", "report"):
        # OpenBLAS starts a thread per core as numpy loads (tens of ms of CPU, a twentieth of
        # an analysis): a capture's analysis does no linear algebra.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from lab.analysis.pcap import CaptureError  # numpy: after the line above

    args = parser(argv[0] if argv else None).parse_args(argv)
    if argv and argv[0] not in ("analyze", "report"):  # every other command may carry calls
        freeze_startup_heap()
    if args.instance is not None:
        # One way to ask for a lab: this command, and the lab daemon it may start, read it.
        os.environ["CALLLAB_INSTANCE"] = str(args.instance)
    try:
        code: int = args.func(args)
    except (LabError, CaptureError, InvalidNumber, ImpairmentError, CodecError, ConnectionError) as exc:
        print(f"calllab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
