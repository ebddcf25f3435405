"""A lab call, analysed: its capture plus what the lab's own parties filed next to it
(captures/<call id>/call.json and the four recordings)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lab.analysis.model import CallModel, LabEvent, RtpStream, lab_party_names, load
from lab.analysis.quality import Pesq
from lab.config import LabConfig
from lab.sip.codecs import lab_name
from lab.sip.sdp import Codec, parse_sdp, webrtc_summary


def sidecar(capture: Path) -> Path:
    """captures/<call id>.pcapng -> captures/<call id>/"""
    return capture.with_suffix("")


def analyze(
    capture: str | Path,
    cfg: LabConfig | None = None,
    with_pesq: bool = True,
    log: Mapping[str, Any] | None = None,
) -> CallModel:
    """The call model of any capture; for a lab call also its statuses and PESQ.

    `log` is the call's own record (CallResult.log()) when the caller holds it; otherwise
    it is read from the call.json beside the capture, if there is one."""
    cfg = cfg or LabConfig()
    capture = Path(capture)
    log = _call_log(sidecar(capture)) if log is None else log
    fallback = {}
    if log.get("webrtc_codec"):
        codec = Codec(**log["webrtc_codec"])
        fallback = {codec.pt: codec}
    for sdp in log.get("webrtc_sdp", []):  # a relayed video's codec, as the gateway answered it
        video = [m for m in parse_sdp(sdp["sdp"]) if m.media == "video" and m.port and m.codecs]
        if sdp["kind"] == "answer" and video:
            fallback[video[0].codecs[0].pt] = video[0].codecs[0]
    model = load(capture, lab_party_names(cfg), fallback)
    if not log:
        return model
    events = _events(model, log, cfg)
    browser_pt = (log.get("webrtc_codec") or {}).get("pt")
    own = own_streams(model, str(log.get("call_id", "")), browser_pt)
    pesq = _pesq(own, sidecar(capture), cfg, log) if with_pesq else ()
    return dataclasses.replace(model, events=events, pesq=pesq)


def _call_log(folder: Path) -> Mapping[str, Any]:
    try:
        data: dict[str, Any] = json.loads((folder / "call.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def _events(model: CallModel, log: Mapping[str, Any], cfg: LabConfig) -> tuple[LabEvent, ...]:
    browser, gateway = cfg.browser.name, cfg.gateway.name
    events = []
    for status in log.get("statuses", []):
        name = status["status"]
        code = f" {status['sip_code']}" if status.get("sip_code") else ""
        if name == "PENDING":
            events.append(LabEvent(status["t"] - model.start, browser, gateway, f"call() to {log['number']}"))
        else:
            events.append(LabEvent(status["t"] - model.start, gateway, browser, f"{name}{code}"))
    for action in log.get("actions", []):
        events.append(LabEvent(action["t"] - model.start, browser, gateway, action["action"]))
    party = {"browser": browser, "gateway": gateway}
    for sdp in log.get("webrtc_sdp", []):
        src, dst = party[sdp["from"]], party["gateway" if sdp["from"] == "browser" else "browser"]
        note = webrtc_summary(sdp["sdp"])
        events.append(LabEvent(sdp["t"] - model.start, src, dst, f"SDP {sdp['kind']}", note))
    return tuple(sorted(events, key=lambda e: e.t))


def own_streams(model: CallModel, call_id: str, browser_pt: int | None = None) -> tuple[RtpStream, ...]:
    """The streams of lab call `call_id` in a capture that may hold other calls too (every
    call's capture records the whole lab, and a sweep's calls overlap): those to or from an
    address:port that an SDP of the call's own dialogs named (dialogs whose requests carry
    its X-Calllab-Call header; answers carry no such header). The browser leg's SDP travels
    over the client's WebSocket, not in the capture: its streams are the ones no SDP
    describes, with the call's payload type `browser_pt` when given. All streams when no
    SIP message carries the call's id (not a lab call)."""
    dialogs = [[model.messages[i] for i in d.messages] for d in model.dialogs]
    mine = [d for d in dialogs if any(msg.lab_call == call_id for msg in d)]
    own = {(m.address, m.port) for d in mine for msg in d for m in msg.sdp if m.port}
    if not call_id or not own:
        return model.streams
    described = {(m.address, m.port) for msg in model.messages for m in msg.sdp if m.port}

    def is_own(s: RtpStream) -> bool:
        ends = {(s.src, s.src_port), (s.dst, s.dst_port)}
        if ends & described:
            return bool(ends & own)
        return browser_pt is None or s.pt == browser_pt

    return tuple(s for s in model.streams if is_own(s))


def _stream(streams: tuple[RtpStream, ...], src: str, dst: str, network: str) -> RtpStream | None:
    """What `src` sent toward `dst`: straight to it, or into the leg's network party."""
    return next((s for s in streams if s.src_party == src and s.dst_party in (dst, network)), None)


def _mouth_to_ear_ms(
    source: np.ndarray, received: np.ndarray, sent_t0: object, heard_t0: object, rate: int
) -> float | None:
    from lab.audio import one_way_latency

    if not isinstance(sent_t0, float | int) or not isinstance(heard_t0, float | int):
        return None
    return round(float(one_way_latency(source, received, float(sent_t0), float(heard_t0), rate)) * 1000, 1)


def _pesq(
    streams: tuple[RtpStream, ...], folder: Path, cfg: LabConfig, log: Mapping[str, Any]
) -> tuple[Pesq, ...]:
    # Only a lab call with recordings pays for the audio tools (`calllab analyze` of any
    # capture does not).
    from lab.analysis.ceiling import is_wideband, through_chain
    from lab.audio import RATE, WIDEBAND_RATE, pesq_nb, pesq_wb, read_wav, resample

    names = (cfg.browser.name, cfg.gateway.name, cfg.pstn.name, cfg.phone.name)
    networks = [n.name for n in cfg.networks.values()]  # browser, sip, mobile: call-path order
    hops = [(a, b, n) for (a, b), n in zip(zip(names, names[1:], strict=False), networks, strict=True)]
    rows = []
    timing, phone = log.get("timing", {}), log.get("phone", {})
    for sender, receiver, prompt, heard, sent_t0, heard_t0 in (
        (
            "Browser",
            "Mobile phone",
            "browser.wav",
            "phone_received.wav",
            timing.get("browser_sent_t0"),
            phone.get("received_t0"),
        ),
        (
            "Mobile phone",
            "Browser",
            "phone.wav",
            "browser_received.wav",
            phone.get("sent_t0"),
            timing.get("browser_received_t0"),
        ),
    ):
        path = folder / heard
        if not path.exists() or not (cfg.prompts_dir / prompt).exists():
            continue
        try:
            source, source_rate = read_wav(cfg.prompts_dir / prompt)
            received, received_rate = read_wav(path)
        except (wave.Error, EOFError, ValueError):  # still being written (its call goes on)
            continue
        legs = hops if sender == "Browser" else [(b, a, n) for a, b, n in reversed(hops)]
        sent = [(s, (a, b)) for a, b, n in legs if (s := _stream(streams, a, b, n)) is not None]
        chain = tuple((lab_name(s.codec, s.clock_rate) or s.codec).lower() for s, _ in sent)
        on_sip_legs = tuple(cfg.browser.name not in ends for _, ends in sent)
        wideband = received_rate == WIDEBAND_RATE and bool(chain) and is_wideband(chain)
        rate, score = (WIDEBAND_RATE, pesq_wb) if wideband else (RATE, pesq_nb)
        source, received = resample(source, source_rate, rate), resample(received, received_rate, rate)
        try:
            heard_score = round(score(source, received), 2)
        except ValueError:  # nothing heard: the streams' loss and the E-model say why
            continue
        ceiling = None
        if chain and (shutil.which("sox") or "gsm" not in chain):
            try:
                ceiling = round(score(source, through_chain(source, list(chain), rate, on_sip_legs)), 2)
            except (KeyError, FileNotFoundError, RuntimeError):
                ceiling = None
        delay = _mouth_to_ear_ms(source, received, sent_t0, heard_t0, rate)
        scale = "P.862.2" if wideband else "P.862"
        rows.append(Pesq(f"{sender} -> {receiver}", heard_score, ceiling, chain, delay, scale))
    return tuple(rows)
