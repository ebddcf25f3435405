"""`calllab up | down | status | call NUMBER`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from lab.client import Call
from lab.config import LabConfig, PhonePolicy
from lab.numbers import InvalidNumber, normalize_number
from lab.scenario import CallResult, place_call
from lab.stack import LabError, Stack, health, read_state, running_config, start_daemon, stop_daemon


def cmd_up(args: argparse.Namespace) -> int:
    cfg = LabConfig()
    if read_state(cfg) is not None:
        print("the lab is already up; `calllab status` shows it")
        return 0
    t0 = time.monotonic()
    reply = start_daemon(cfg)
    print(f"lab up in {time.monotonic() - t0:.2f} s (parties ready in {reply['ready_s']:.2f} s)")
    return cmd_status(args)


def cmd_down(args: argparse.Namespace) -> int:
    if stop_daemon(LabConfig()):
        print("lab stopped")
    else:
        print("no lab was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = running_config() or LabConfig()
    rows = asyncio.run(health(cfg))
    up = read_state(cfg) is not None
    print(f"lab is {'up' if up else 'down'}")
    print(f"{'party':<14} {'address':<28} {'pid':>7}  health")
    print(f"{cfg.browser.name:<14} {cfg.browser.host:<28} {'-':>7}  (the client: this process)")
    for row in rows:
        pid = row["pid"] or "-"
        print(
            f"{row['party']:<14} {row['address']:<28} {pid:>7}  {'ok' if row['healthy'] else 'not answering'}"
        )
    return 0 if not up or all(r["healthy"] for r in rows) else 1


def _print_status(call: Call, stream: object) -> None:
    code = f" {call.sip_code}" if call.sip_code else ""
    reason = f" {call.reason}" if call.reason else ""
    print(f"{time.strftime('%H:%M:%S')} {call.status.value}{code}{reason}", file=stream, flush=True)  # type: ignore[call-overload]


async def _call(args: argparse.Namespace) -> CallResult:
    answer = PhonePolicy.parse(f"after:{args.answer_after}") if args.answer_after is not None else None
    stream = sys.stderr if args.json else sys.stdout
    kwargs = {
        "duration": args.duration,
        "answer": answer,
        "codec": args.codec,
        "password": args.password,
        "on_status": lambda call: _print_status(call, stream),
    }
    try:
        normalize_number(args.number)
    except InvalidNumber:
        # place_call refuses it before anything is contacted: no lab needed for that answer.
        return await place_call(LabConfig(), args.number)
    cfg = running_config()
    if cfg is not None:
        return await place_call(cfg, args.number, **kwargs)  # type: ignore[arg-type]
    print("starting the lab for this call", file=stream, flush=True)
    async with Stack() as stack:
        return await place_call(stack.cfg, args.number, **kwargs)  # type: ignore[arg-type]


def cmd_call(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_call(args))
    except LabError as exc:
        if not args.json:
            raise
        result = CallResult("", args.number, "FAILED", None, f"the lab could not start: {exc}")
    if args.json:
        print(result.to_json())
    else:
        if result.setup_ms is not None:
            print(f"setup {result.setup_ms:.1f} ms")
        if result.final_status not in ("FINISH",):
            print(f"call {result.final_status}: {result.sip_code or ''} {result.reason}".rstrip())
        for name, path in result.audio.items():
            if path:
                print(f"{name:<17} {path}")
    return 0 if result.ok else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="calllab", description="SIP/WebRTC call lab on loopback")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the lab in the background").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the lab").set_defaults(func=cmd_down)
    sub.add_parser("status", help="parties, addresses, PIDs, health").set_defaults(func=cmd_status)
    call = sub.add_parser("call", help="call a number from the browser-style client")
    call.add_argument("number", help="e.g. +79991234567 or 89991234567")
    call.add_argument("--duration", type=float, default=5.0, help="seconds to talk (default 5)")
    call.add_argument("--answer-after", type=float, default=None, help="phone answers after S seconds")
    call.add_argument("--codec", choices=["opus", "pcmu", "pcma"], default="opus", help="WebRTC leg codec")
    call.add_argument("--password", default=None, help="log in with this password instead of the lab's")
    call.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    call.set_defaults(func=cmd_call)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except LabError as exc:
        print(f"calllab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
