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

from lab.analysis.call import analyze
from lab.analysis.pcap import CaptureError
from lab.capture import Capture, CaptureUnavailable, lab_filter
from lab.client import Call, CallStatus, LoginFailed, Session
from lab.client.session import new_call_id
from lab.config import ANSWER_HEADER, CALL_HEADER, LabConfig, PhonePolicy, call_dir
from lab.numbers import InvalidNumber, normalize_number
from lab.report import write as write_report

RING_TIMEOUT = 60.0  # s the caller lets a phone ring before giving up
PHONE_REPORT_TIMEOUT = 5.0  # s for the phone to file its recording after the call
CAPTURE_TAIL = 0.3  # s of capture after the call, for the last BYE/200 and RTCP


@dataclass
class CallResult:
    call_id: str
    number: str
    final_status: str
    sip_code: int | None
    reason: str
    statuses: list[dict[str, Any]] = field(default_factory=list)
    setup_ms: float | None = None
    audio: dict[str, str | None] = field(default_factory=dict)
    phone: dict[str, Any] = field(default_factory=dict)
    #: time.monotonic() of the first sample the browser sent and heard (see one_way_latency)
    timing: dict[str, float | None] = field(default_factory=dict)
    webrtc_codec: dict[str, Any] | None = None  # {"name", "pt", "rate"} negotiated on the browser leg
    capture: str | None = None  # captures/<call_id>.pcapng
    capture_error: str | None = None  # why there is no capture
    report: str | None = None  # captures/<call_id>.html

    @property
    def ok(self) -> bool:
        """Established, then finished normally."""
        seen = {s["status"] for s in self.statuses}
        return self.final_status == CallStatus.FINISH.value and CallStatus.ESTABLISHED.value in seen

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


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
    )


async def place_call(
    cfg: LabConfig,
    number: str,
    *,
    duration: float = 5.0,
    answer: PhonePolicy | None = None,
    codec: str = "opus",
    password: str | None = None,
    on_status: Callable[[Call], None] | None = None,
    ring_timeout: float = RING_TIMEOUT,
    capture: bool = True,
    report: bool = True,
) -> CallResult:
    """Log in, call `number`, talk for `duration` s, hang up; never raises for call failures.

    With `capture`, SIP and RTP of every leg go to captures/<call_id>.pcapng, and with
    `report` the call's HTML report to captures/<call_id>.html.
    """
    call_id = new_call_id()
    try:
        number = normalize_number(number)
    except InvalidNumber as exc:
        return _result(call_id, number, None, CallStatus.FAILED.value, None, str(exc))
    recorder: Capture | None = None
    capture_error = None
    if capture:
        try:
            recorder = Capture(cfg.captures_dir / f"{call_id}.pcapng", lab_filter(cfg)).start()
        except CaptureUnavailable as exc:
            capture_error = str(exc)
    try:
        result = await _place_call(
            cfg, call_id, number, duration, answer, codec, password, on_status, ring_timeout
        )
    finally:
        if recorder is not None:
            await asyncio.sleep(CAPTURE_TAIL)
            recorder.stop()
    result.capture = str(recorder.path) if recorder else None
    result.capture_error = capture_error
    if result.statuses:  # something happened: file the call's log next to its recordings
        folder = call_dir(cfg, call_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "call.json").write_text(result.to_json())
    if report and result.capture:
        try:
            model = analyze(result.capture, cfg)
        except CaptureError as exc:
            result.capture_error = f"the capture could not be analysed: {exc}"
        else:
            result.report = str(write_report(model, cfg.captures_dir / f"{call_id}.html", f"Call {call_id}"))
    return result


async def _place_call(
    cfg: LabConfig,
    call_id: str,
    number: str,
    duration: float,
    answer: PhonePolicy | None,
    codec: str,
    password: str | None,
    on_status: Callable[[Call], None] | None,
    ring_timeout: float,
) -> CallResult:
    folder = call_dir(cfg, call_id)
    account = cfg.account()
    if password is not None:
        account = dataclasses.replace(account, password=password)
    policy = answer or cfg.policy_for(number)
    session = Session(cfg.ws_url, account, host=cfg.browser.host)
    try:
        await session.connect()
    except LoginFailed as exc:
        return _result(call_id, number, None, CallStatus.FAILED.value, exc.code, exc.reason)
    try:
        call = session.create_call(
            number,
            codec=codec,
            prompt=cfg.prompts_dir / "browser.wav",
            record_dir=folder,
            headers={CALL_HEADER: call_id, ANSWER_HEADER: policy.header_value()},
            call_id=call_id,
        )
        if on_status:
            call.on(None, on_status)
        await call.call()
        answer_wait = policy.answer_after if policy.action == "answer" else 0.0
        try:
            await call.wait_for(CallStatus.ESTABLISHED, timeout=ring_timeout + answer_wait)
        except TimeoutError:
            pass  # nobody answered: hang up as a caller would (CANCEL)
        if call.status == CallStatus.ESTABLISHED:
            await asyncio.sleep(duration)
        await call.hangup()
        await call.ended(timeout=10)
        await call.media_closed()
    except TimeoutError as exc:
        return _result(call_id, number, call, CallStatus.FAILED.value, None, str(exc))
    finally:
        await session.disconnect()
    result = _result(call_id, number, call, call.status.value, call.sip_code, call.reason)
    established = next((e.t for e in call.history if e.status == CallStatus.ESTABLISHED), None)
    if established is not None and call.started_at is not None:
        result.setup_ms = round((established - call.started_at - answer_wait) * 1000, 1)
    result.phone = await _phone_report(folder) if established else {}
    if call.negotiated is not None:
        result.webrtc_codec = dataclasses.asdict(call.negotiated)
    result.timing = {
        "browser_sent_t0": call.mic.started_at if call.mic else None,
        "browser_received_t0": call.heard.started_at,
    }
    result.audio = {
        name: str(folder / f"{name}.wav") if (folder / f"{name}.wav").exists() else None
        for name in ("browser_sent", "browser_received", "phone_sent", "phone_received")
    }
    return result


async def _phone_report(folder: Path) -> dict[str, Any]:
    """What the lab's phone filed about the call (its recording is complete once it exists)."""
    path = folder / "phone.json"
    deadline = time.monotonic() + PHONE_REPORT_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            return {
                "error": f"the mobile phone filed no report in {folder} within {PHONE_REPORT_TIMEOUT:g} s"
            }
        await asyncio.sleep(0.05)
    report: dict[str, Any] = json.loads(path.read_text())
    return report
