"""One whole call through the lab, as `calllab call`, the tests and the notebooks place it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import webrtc
from lab.analysis.model import CallModel
from lab.analysis.pcap import CaptureError
from lab.analysis.recorded_call import analyze, own_streams
from lab.capture import Capture, CaptureUnavailable, lab_filter, prune
from lab.client import Call, CallStatus, LoginFailed, Session
from lab.config import (
    ANSWER_HEADER,
    CALL_HEADER,
    CODECS_HEADER,
    IMPAIR_HEADER,
    LabConfig,
    Party,
    PhonePolicy,
    SipAccount,
    call_dir,
    new_call_id,
)
from lab.jitterspec import PACKET_MS
from lab.network.control import what_the_networks_did
from lab.network.detour import offering
from lab.network.legs import LegImpairment, to_header
from lab.numbers import InvalidNumber, PhoneNumber, normalize_number
from lab.phonecontrol import AwaitReport, Command, Dial, Dialling, Filed, HangupCall, Reply
from lab.phonecontrol import command as control_command
from lab.report import write as write_report
from lab.signaling import DTMF_DIGITS, status_text
from lab.sip import codecs
from lab.webrtc import BrowserAudio

RING_TIMEOUT = 60.0  # s the caller lets a phone ring before giving up
PHONE_REPORT_TIMEOUT = 5.0  # s for the phone to file its recording after the call
DTMF_SETTLE = 0.5  # s for the last digit to reach the phone before anything else happens
DTMF_DIGIT_S = {"rfc4733": 0.25, "info": 0.1}  # an RFC 4733 digit plays 160 ms plus a pause
TRANSFER_TIMEOUT = 15.0  # s for the final NOTIFY of a transfer (the target may ring)
TRANSFERRED_TALK = 2.0  # s the two phones talk after a transfer before the target hangs up
PHONE_CONTROL_TIMEOUT = 5.0  # s for the phone's control socket to reply
CAPTURE_TAIL = 0.3  # s of capture after the call, for the last BYE/200 and RTCP


@dataclass
class CallResult:
    call_id: str
    number: str
    final_status: str
    sip_code: int | None
    reason: str
    statuses: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # the caller's hangup(), hold(), DTMF
    setup_ms: float | None = None
    audio: dict[str, str | None] = field(default_factory=dict)
    phone: dict[str, Any] = field(default_factory=dict)
    #: time.monotonic() of the first sample the browser sent and heard (see one_way_latency)
    timing: dict[str, float | None] = field(default_factory=dict)
    webrtc_codec: dict[str, Any] | None = None  # {"name", "pt", "rate"} negotiated on the browser leg
    #: the browser leg's SDP offer and answer over the WebSocket (Call.sdp_exchange)
    webrtc_sdp: list[dict[str, Any]] = field(default_factory=list)
    #: the browser leg's asked audio ({"codec", "opus_bitrate", "opus_fec", "jitter_buffer"}) and
    #: what the client's jitter buffer did ("client_jitter_buffer": {"lost", "late", "depth_ms"})
    browser_audio: dict[str, Any] | None = None
    capture: str | None = None  # captures/<call_id>.pcapng
    capture_error: str | None = None  # why there is no capture
    report: str | None = None  # captures/<call_id>.html
    events: list[dict[str, Any]] = field(default_factory=list)  # everything above, in time order
    #: {"target", "attended", "code", "reason"} of a transfer; an attended one adds the
    #: "consultation" call's {"call_id", "final_status", "reason", "phone"}
    transfer: dict[str, Any] | None = None
    #: per impaired leg and direction: the spec asked for and what its network party did
    #: (packets, dropped, duplicated, delayed, dropped_seqs)
    impairments: list[dict[str, Any]] = field(default_factory=list)
    #: each leg's codec as negotiated, from the capture: {"browser": "opus", "sip": "G722",
    #: "mobile": "GSM"} (lab.sip.codecs names); empty when the call was not captured and analysed
    codecs: dict[str, str | None] = field(default_factory=dict)
    #: a video call's video: {"declined": bool, "reason"} as the gateway said (its "video" event);
    #: when it was relayed, the client's "frames_received" and their "size" ("320x240")
    video: dict[str, Any] | None = None
    browser: str = "aiortc"  # the browser leg's WebRTC: lab.client's aiortc, or "chromium" (lab.chromium)
    #: the analysed capture (what the report shows); not part of call.json
    model: CallModel | None = field(default=None, repr=False, compare=False)

    def collect_events(self) -> None:
        """One time-ordered list of the statuses, the caller's actions and what the phone saw."""
        rows = [
            {
                "t": s["t"],
                "party": "Browser",
                "what": "status " + status_text(s["status"], s.get("sip_code"), s.get("reason", "")),
            }
            for s in self.statuses
        ]
        rows += [{"t": a["t"], "party": "Browser", "what": a["action"]} for a in self.actions]
        if self.video is not None:
            rows.append({"t": self.video["t"], "party": "Browser", "what": f"video: {self.video['reason']}"})
        for e in self.phone.get("events", []):
            detail = f" {e['digit']} ({e['method']})" if e.get("event") == "dtmf" else ""
            rows.append({"t": e["t"], "party": "Mobile phone", "what": f"{e['event']}{detail}"})
        self.events = sorted(rows, key=lambda r: r["t"])

    @property
    def ok(self) -> bool:
        """Established, then finished normally: not by a FINISH with an error code (408 after
        a media timeout)."""
        seen = {s["status"] for s in self.statuses}
        normal_end = self.sip_code is None or self.sip_code < 400
        return (
            self.final_status == CallStatus.FINISH.value
            and CallStatus.ESTABLISHED.value in seen
            and normal_end
        )

    def log(self) -> dict[str, Any]:
        """What call.json holds: everything but the model (which is built from it)."""
        data = dataclasses.asdict(dataclasses.replace(self, model=None))
        del data["model"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.log(), indent=2)


def _result(
    call_id: str, number: str, call: Call | None, status: str, code: int | None, reason: str
) -> CallResult:
    return CallResult(
        call_id=call_id,
        number=number,
        final_status=status,
        sip_code=code,
        reason=reason,
        statuses=[
            {"status": e.status.value, "t": e.t, "sip_code": e.sip_code, "reason": e.reason}
            for e in (call.history if call else [])
        ],
        actions=[{"t": t, "action": label} for t, label in (call.actions if call else [])],
        webrtc_sdp=list(call.sdp_exchange) if call else [],
    )


class LabCall:
    """One call from the browser-style client through the lab, step by step: start() it,
    hang_up() when you like, finish() for the result. Captures and reports it.

    place_call() runs the steps with a fixed talk time; the notebook phone widget runs them
    from its buttons on a session the user logged in with.
    """

    def __init__(
        self,
        cfg: LabConfig,
        session: Session,
        number: PhoneNumber,
        *,
        answer: PhonePolicy | None = None,
        codec: str | None = None,
        audio: BrowserAudio | None = None,
        on_status: Callable[[Call], None] | None = None,
        capture: bool = True,
        report: bool = True,
        incoming: bool = False,
        impairments: tuple[LegImpairment, ...] = (),
        sip_codec: str | None = None,
        mobile_codec: str | None = None,
        video: bool = False,
    ) -> None:
        """`sip_codec`, `mobile_codec`: the codec of those legs (lab.sip.codecs.LEG_CODECS),
        else the lab's default; CodecError for one that leg cannot carry."""
        self.cfg = cfg
        self.session = session
        self.call_id = new_call_id("dialin-" if incoming else "")
        self.number = number
        # Without an explicit answer the phone decides (its control socket may have set it);
        # an incoming call is answered here, and the video phone answers at once, so nothing
        # is left out of their setup time.
        at_once = incoming or number == cfg.videophone_number
        self.policy = PhonePolicy("answer", 0.0) if at_once else answer or cfg.policy_for(self.number)
        headers = {CALL_HEADER: self.call_id}
        if answer is not None:
            headers[ANSWER_HEADER] = answer.header_value()
        self.impairments = () if incoming else impairments
        if self.impairments:
            headers[IMPAIR_HEADER] = to_header(self.impairments)
        chosen = {
            leg: codecs.choose(leg, name)
            for leg, name in (("sip", sip_codec), ("mobile", mobile_codec))
            if name
        }
        if chosen and not incoming:
            headers[CODECS_HEADER] = codecs.to_header(chosen)
        self.incoming = incoming
        self.folder = call_dir(cfg, self.call_id)
        self.want_report = report
        self.recorder: Capture | None = None
        self.capture_error: str | None = None
        if capture:
            try:
                self.recorder = Capture(cfg.captures_dir / f"{self.call_id}.pcapng", lab_filter(cfg)).start()
            except CaptureUnavailable as exc:
                self.capture_error = str(exc)
        self.on_status = on_status
        #: set once the call's status is final (FINISH, FAILED, BUSY): what a live view waits for
        self.over = asyncio.Event()
        self._finished: asyncio.Task[CallResult] | None = None
        self.call: Call
        if incoming:  # the call object comes with the gateway's "incoming" (wait_incoming)
            session.incoming_prompt = cfg.prompts_dir / "browser.wav"
            session.incoming_record_dir = lambda call_id: call_dir(cfg, call_id)
            self._incoming: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
            session.on_incoming(self._ring)
            return
        self.call = session.create_call(
            self.number,
            constraints={"audio": True, "video": video},
            codec=codec,
            audio=audio,
            prompt=cfg.prompts_dir / "browser.wav",
            record_dir=self.folder,
            headers=headers,
            call_id=self.call_id,
        )
        browser_leg = offering(cfg, "browser", self.call_id, cfg.browser.host, "to-browser", self.impairments)
        if browser_leg is not None:
            self.call.offer_edit = browser_leg.arewrite
        self.call.on(None, self._status_changed)

    def _status_changed(self, call: Call) -> None:
        if self.on_status:
            self.on_status(call)
        if call.status.final:
            self.over.set()

    def _ring(self, call: Call) -> None:
        if not self._incoming.done():
            self._incoming.set_result(call)

    async def wait_incoming(self, timeout: float = 10.0) -> Call:
        """The call the phone places to this user, ringing at the client."""
        try:
            self.call = await asyncio.wait_for(self._incoming, timeout)
        except TimeoutError:
            raise TimeoutError(f"no call reached {self.session.account.login} within {timeout:g} s") from None
        self.call.on(None, self._status_changed)
        return self.call

    @property
    def capture_path(self) -> Path | None:
        return self.recorder.path if self.recorder else None

    @property
    def answer_wait(self) -> float:
        """How long the phone is expected to ring (what setup time leaves out)."""
        return self.policy.answer_after if self.policy.action == "answer" else 0.0

    async def start(self, ring_timeout: float = RING_TIMEOUT) -> CallStatus:
        """Dial and wait until the call is established or over; hangs up (CANCEL) when
        nobody answers within ring_timeout."""
        await self.call.call()
        try:
            return await self.call.wait_for(CallStatus.ESTABLISHED, timeout=ring_timeout + self.answer_wait)
        except TimeoutError:
            await self.call.hangup()
            return self.call.status

    async def hang_up(self) -> None:
        await self.call.hangup()

    async def finish(self) -> CallResult:
        """Wait for the end, collect recordings, stop the capture, file call.json, analyse the
        capture and write the report. Runs once: every caller awaits the same result."""
        if self._finished is None:
            self._finished = asyncio.ensure_future(self._finish())
        return await asyncio.shield(self._finished)

    async def _finish(self) -> CallResult:
        call = self.call
        try:
            await call.ended(timeout=10)
            await call.media_closed()
        except TimeoutError as exc:
            result = _result(self.call_id, self.number, call, CallStatus.FAILED.value, None, str(exc))
        else:
            result = self._result()
        # The video phone (baresip) files no report: its recordings are its own (lab.sip.videophone).
        lab_phone = self.incoming or self.number != self.cfg.videophone_number
        if lab_phone and any(s["status"] == CallStatus.ESTABLISHED.value for s in result.statuses):
            # The phone the number reaches files the report; the one that dialled, for a dial-in.
            phone = self.cfg.phone if self.incoming else self.cfg.phone_for(self.number)
            result.phone = await phone_report(self.cfg, phone, self.call_id)
            if result.setup_ms is not None and result.phone.get("answer_delay") is not None:
                # What the phone really waited before answering, not what was asked of it.
                result.setup_ms = round(
                    result.setup_ms + (self.answer_wait - result.phone["answer_delay"]) * 1000, 1
                )
        if self.impairments:
            result.impairments = await what_the_networks_did(self.cfg, self.call_id, self.impairments)
        result.collect_events()
        result.audio = {
            name: str(self.folder / f"{name}.wav") if (self.folder / f"{name}.wav").exists() else None
            for name in ("browser_sent", "browser_received", "phone_sent", "phone_received")
        }
        if self.recorder is not None:
            await asyncio.sleep(CAPTURE_TAIL)
            self.recorder.stop()
            result.capture = str(self.recorder.path)
        result.capture_error = self.capture_error
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "call.json").write_text(result.to_json())
        if self.want_report and result.capture:
            try:
                result.model = analyze(result.capture, self.cfg, log=result.log())
            except CaptureError as exc:
                result.capture_error = f"the capture could not be analysed: {exc}"
            else:
                browser_pt = (result.webrtc_codec or {}).get("pt")
                own = own_streams(result.model, self.call_id, browser_pt)
                result.codecs = codecs.negotiated(own, self.cfg)
                (self.folder / "call.json").write_text(result.to_json())
                path = self.cfg.captures_dir / f"{self.call_id}.html"
                result.report = str(write_report(result.model, path, f"Call {self.call_id}"))
        prune(self.cfg.captures_dir, self.cfg.keep_calls, self.cfg.keep_mb)
        return result

    def _result(self) -> CallResult:
        call = self.call
        result = _result(self.call_id, self.number, call, call.status.value, call.sip_code, call.reason)
        result.browser = call.browser
        established = next((e.t for e in call.history if e.status == CallStatus.ESTABLISHED), None)
        if established is not None and call.started_at is not None:
            result.setup_ms = round((established - call.started_at - self.answer_wait) * 1000, 1)
        if call.negotiated is not None:
            result.webrtc_codec = dataclasses.asdict(call.negotiated)
        said = next((e for e in call.events if e.get("event") == "video"), None)
        if said is not None:
            result.video = {"declined": said["declined"], "reason": said["reason"], "t": said["t"]}
            seen = call.media.video_seen  # aiortc's decoded frames, or what the Phone page showed
            if not said["declined"]:
                result.video |= {"frames_received": seen.frames, "size": f"{seen.width}x{seen.height}"}
        result.browser_audio = call.audio.describe() | {
            "client_jitter_buffer": [
                {"lost": b.lost, "late": b.late, "depth_ms": b.depth * PACKET_MS}
                for b in webrtc.jitter_buffers(call.media.pc)
            ]
        }
        result.timing = {
            "browser_sent_t0": call.sent_t0,
            "browser_received_t0": call.heard.started_at,
        }
        return result


def lab_account(cfg: LabConfig, password: str | None = None) -> SipAccount:
    account = cfg.account()
    return account if password is None else dataclasses.replace(account, password=password)


async def place_call(
    cfg: LabConfig,
    number: str,
    *,
    duration: float = 5.0,
    answer: PhonePolicy | None = None,
    codec: str | None = None,
    audio: BrowserAudio | None = None,
    password: str | None = None,
    on_status: Callable[[Call], None] | None = None,
    ring_timeout: float = RING_TIMEOUT,
    capture: bool = True,
    report: bool = True,
    dtmf: str = "",
    dtmf_method: str = "rfc4733",
    hold: float = 0.0,
    transfer: str = "",
    attended: bool = False,
    impairments: tuple[LegImpairment, ...] = (),
    sip_codec: str | None = None,
    mobile_codec: str | None = None,
    video: bool = False,
    client: Callable[[SipAccount], Session] | None = None,
) -> CallResult:
    """Log in, call `number`, talk for `duration` s, hang up; never raises for call failures.
    With `video` the call offers video as well (CallResult.video: what became of it).

    `impairments` (lab.network.legs.plan) send those legs' media through their network
    party, which drops, delays and duplicates packets as asked. `sip_codec` and
    `mobile_codec` choose those legs' codecs (lab.sip.codecs.LEG_CODECS; "g722", "gsm").

    Once established: send `dtmf` digits (then wait a second for them to arrive), and hold
    the call for `hold` seconds (then resume); both count within `duration`. Then, with
    `transfer`, REFER the phone to that number (`attended`: first hold the call and place a
    consultation call to the number, then REFER with Replaces): on success the two phones
    talk for a second and the target hangs up; on failure the call goes on.

    `audio` is the browser leg's codec, Opus bitrate and FEC, and jitter buffers
    (`BrowserAudio`); `codec` is short for `audio=BrowserAudio(codec)`.

    With `capture`, SIP and RTP of every leg go to captures/<call_id>.pcapng, and with
    `report` the call's HTML report to captures/<call_id>.html.

    `client` makes the browser's Session for the account (default: lab.client's, on aiortc;
    lab.chromium's places the call from Chromium on the Phone page).
    """
    try:
        number = normalize_number(number)
        transfer = normalize_number(transfer) if transfer else ""
    except InvalidNumber as exc:
        return _result(new_call_id(), number, None, CallStatus.FAILED.value, None, str(exc))
    try:
        for leg, name in (("sip", sip_codec), ("mobile", mobile_codec)):
            if name:
                codecs.choose(leg, name)
    except codecs.CodecError as exc:
        return _result(new_call_id(), number, None, CallStatus.FAILED.value, None, str(exc))
    if any(d not in DTMF_DIGITS for d in dtmf):
        reason = f"DTMF digits must be among {DTMF_DIGITS}, not {dtmf!r}"
        return _result(new_call_id(), number, None, CallStatus.FAILED.value, None, reason)
    account = lab_account(cfg, password)
    session = client(account) if client else Session(cfg.ws_url, account, host=cfg.browser.host)
    try:
        await session.connect()
    except LoginFailed as exc:
        return _result(new_call_id(), number, None, CallStatus.FAILED.value, exc.code, exc.reason)
    try:
        lab_call = LabCall(
            cfg,
            session,
            number,
            answer=answer,
            codec=codec,
            audio=audio,
            on_status=on_status,
            capture=capture,
            report=report,
            impairments=impairments,
            sip_codec=sip_codec,
            mobile_codec=mobile_codec,
            video=video,
        )
        if await lab_call.start(ring_timeout) == CallStatus.ESTABLISHED:
            started = time.monotonic()
            if dtmf:
                await lab_call.call.send_dtmf(dtmf, dtmf_method)
                await asyncio.sleep(DTMF_SETTLE + DTMF_DIGIT_S[dtmf_method] * len(dtmf))
            if hold:
                await lab_call.call.hold()
                await lab_call.call.wait_for(CallStatus.HOLD, timeout=5)
                await asyncio.sleep(hold)
                await lab_call.call.unhold()
                await lab_call.call.wait_for(CallStatus.ESTABLISHED, timeout=5)
            if not transfer:
                outcome = None
            elif attended:
                outcome = await _attended_transfer(lab_call, transfer)
            else:
                outcome = await _transfer(cfg, lab_call.call, transfer)
            if outcome is None or outcome["code"] >= 300:
                await asyncio.sleep(max(0.0, duration - (time.monotonic() - started)))
                await lab_call.hang_up()
        else:
            outcome = None
        result = await lab_call.finish()
        result.transfer = outcome
        return result
    finally:
        await session.disconnect()


async def _transfer(cfg: LabConfig, call: Call, target: str | Call) -> dict[str, Any]:
    """REFER the far end to `target` (a number, or a consultation call to replace); the final
    NOTIFY's code, 400 when the gateway refused, or 408 when no final NOTIFY comes. On
    success the two phones talk for a while, then the target hangs up."""
    number = target.callee if isinstance(target, Call) else target
    outcome: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    def on_event(_: Call, event: dict[str, Any]) -> None:
        if outcome.done():
            return
        if event["event"] == "transfer" and event.get("final"):
            outcome.set_result((int(event["code"]), str(event["reason"])))
        elif event["event"] == "error" and "transfer" in str(event.get("reason")):
            outcome.set_result((400, str(event["reason"])))

    call.on_event(on_event)
    await call.transfer(target)
    try:
        code, reason = await asyncio.wait_for(outcome, TRANSFER_TIMEOUT)
    except TimeoutError:
        code, reason = 408, f"no final NOTIFY within {TRANSFER_TIMEOUT:g} s"
    if code < 300:
        await call.ended(timeout=5)
        await asyncio.sleep(TRANSFERRED_TALK)
        await phone_command(cfg, cfg.phone_for(number), HangupCall())
    return {"target": number, "attended": isinstance(target, Call), "code": code, "reason": reason}


async def consult(lab_call: LabCall, target: str) -> LabCall:
    """Attended transfer, first step: hold the call (unless it is held) and call `target` on
    the same session; returns the consultation call once it is answered or over."""
    call = lab_call.call
    if call.status != CallStatus.HOLD:
        await call.hold()
        await call.wait_for(CallStatus.HOLD, timeout=5)
    number = normalize_number(target)
    consultation = LabCall(lab_call.cfg, lab_call.session, number, capture=False, report=False)
    await consultation.start()
    return consultation


async def _attended_transfer(lab_call: LabCall, target: str) -> dict[str, Any]:
    """Hold the call, call `target` (the consultation), then transfer the call to it."""
    cfg, call = lab_call.cfg, lab_call.call
    consultation = await consult(lab_call, target)
    if consultation.call.status == CallStatus.ESTABLISHED:
        outcome = await _transfer(cfg, call, consultation.call)
        if outcome["code"] >= 300:
            await consultation.hang_up()
    else:
        outcome = {
            "target": consultation.number,
            "attended": True,
            "code": consultation.call.sip_code or 0,
            "reason": f"the consultation call failed: {consultation.call.reason}",
        }
    if outcome["code"] >= 300:
        await call.unhold()
        await call.wait_for(CallStatus.ESTABLISHED, timeout=5)
    done = await consultation.finish()
    outcome["consultation"] = {
        "call_id": done.call_id,
        "final_status": done.final_status,
        "reason": done.reason,
        "phone": done.phone,
    }
    return outcome


async def receive_call(
    cfg: LabConfig,
    *,
    caller: str | None = None,
    answer_after: float = 0.5,
    duration: float = 3.0,
    reject: int | None = None,
    on_status: Callable[[Call], None] | None = None,
    report: bool = True,
) -> CallResult:
    """The lab's mobile phone calls the browser user (through the PSTN gateway and the SIP
    server) from `caller` (the phone's own number unless given); the client answers after
    `answer_after` s and talks, or rejects with `reject`."""
    caller = caller or cfg.phone_number
    session = Session(cfg.ws_url, lab_account(cfg), host=cfg.browser.host)
    try:
        await session.connect()
    except LoginFailed as exc:
        return _result(new_call_id(), caller, None, CallStatus.FAILED.value, exc.code, exc.reason)
    try:
        lab_call = LabCall(
            cfg, session, normalize_number(caller), incoming=True, on_status=on_status, report=report
        )
        reply = await phone_command(cfg, None, Dial(to=cfg.login, call_id=lab_call.call_id, caller=caller))
        if not isinstance(reply, Dialling):
            raise RuntimeError(f"the mobile phone did not dial: {getattr(reply, 'reason', reply)}")
        call = await lab_call.wait_incoming()
        if reject is not None:
            await call.reject(reject)
        else:
            await asyncio.sleep(answer_after)
            await call.answer()
            if await call.wait_for(CallStatus.ESTABLISHED, timeout=10) == CallStatus.ESTABLISHED:
                await asyncio.sleep(duration)
                await call.hangup()
        return await lab_call.finish()
    finally:
        await session.disconnect()


async def phone_command(
    cfg: LabConfig, phone: Party | None, command: Command, timeout: float = PHONE_CONTROL_TIMEOUT
) -> Reply:
    """One command to a lab phone's control socket (the first phone's unless given), and its
    reply; ConnectionError when the phone does not answer within `timeout` s."""
    return await control_command(cfg.control_url(phone or cfg.phone), command, timeout)


async def phone_report(cfg: LabConfig, phone: Party, call_id: str) -> dict[str, Any]:
    """What the lab phone that had the call filed about it, once it has (its recording is
    complete then): the phone tells when, no polling. The mobile phone is a pool (its PSTN
    channel chose the process): every process is asked, the one that had the call answers."""
    processes = cfg.phone_pool if phone == cfg.phone else (phone,)
    waiting = AwaitReport(call_id=call_id, timeout=PHONE_REPORT_TIMEOUT)
    asked = [
        asyncio.ensure_future(phone_command(cfg, p, waiting, PHONE_REPORT_TIMEOUT + 1)) for p in processes
    ]
    refusals: list[str] = []
    try:
        for answer in asyncio.as_completed(asked):
            try:
                reply = await answer
            except ConnectionError as exc:
                refusals.append(str(exc))
                continue
            if isinstance(reply, Filed):
                report: dict[str, Any] = json.loads(Path(reply.path).read_text())
                return report
            refusals.append(getattr(reply, "reason", str(reply)))
    finally:
        for task in asked:
            task.cancel()
    return {"error": "; ".join(refusals)}
