"""Process main for a pjsua2 party: one endpoint, one asyncio loop, stop on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from lab.config import LabConfig, Party
from lab.jitterspec import JitterBufferSpec
from lab.process import freeze_startup_heap
from lab.sip.endpoint import SipEndpoint


class PartyApp(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def load_config(description: str, default_party: str) -> tuple[LabConfig, Party]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="lab config JSON written by the stack")
    parser.add_argument("--party", default=default_party, help="which of the config's parties this is")
    args = parser.parse_args()
    cfg = LabConfig.load(Path(args.config))
    try:
        return cfg, cfg.process(args.party)
    except KeyError as exc:
        parser.error(f"{args.config}: {exc.args[0]}")


def setup_logging(cfg: LabConfig, party: Party) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {party.name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve(
    cfg: LabConfig,
    party: Party,
    codecs: list[str],
    build: Callable[[SipEndpoint], PartyApp],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    slug = party.name.lower().replace(" ", "-")  # the same file names the stack's logs use
    endpoint = SipEndpoint(
        name=party.name,
        host=party.host,
        sip_port=party.sip_port,
        rtp_port=party.rtp_port,
        rtp_port_count=party.rtp_port_count,
        codecs=codecs,
        jitter_buffer=JitterBufferSpec.parse(cfg.sip_jitter_buffer),
        clock_rate=cfg.audio_rate,
        log_path=cfg.run_dir / f"{slug}.pjsip.log",
    )
    app = build(endpoint)
    try:
        await app.start()
        freeze_startup_heap()
        logging.getLogger(slug).info("ready on %s", party.sip_address)
        await stop.wait()
    finally:
        await app.stop()
        del app
        endpoint.shutdown()


def run(
    party_name: str,
    codecs: Callable[[LabConfig], list[str]],
    build: Callable[[LabConfig, SipEndpoint, Party], PartyApp],
) -> None:
    cfg, party = load_config(f"calllab {party_name}", party_name)
    setup_logging(cfg, party)
    asyncio.run(serve(cfg, party, codecs(cfg), lambda ep: build(cfg, ep, party)))
