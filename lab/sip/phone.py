"""The mobile phone: rings, answers per policy, plays its speech prompt, records what it hears.

What it recorded of a call goes to captures/<call id>/ with a phone.json written last, so a
reader knows the recording is complete when that file exists.

Its control socket (a WebSocket on the phone's address) is the phone's screen and buttons:
watchers get events (incoming with caller id, answered, dtmf, held, resumed, ended) and may
send answer, reject, hangup, dial, or set the policy for calls that do not bring their own
(the messages: lab/phonecontrol.py).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import shutil
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import ANSWER_HEADER, CALL_HEADER, LabConfig, Party, PhonePolicy, call_dir, new_call_id
from lab.network.detour import answering
from lab.numbers import normalize_number
from lab.phonecontrol import (
    AnswerCall,
    Answered,
    AwaitReport,
    Command,
    ControlServer,
    Dial,
    Dialling,
    DigitReceived,
    Done,
    Ended,
    Filed,
    HangupCall,
    Held,
    Hello,
    PolicySet,
    Refused,
    RejectCall,
    Reply,
    Resumed,
    Ringback,
    Ringing,
    SetPolicy,
)
from lab.sip import codecs
from lab.sip.endpoint import CallSnapshot, SipCall, SipEndpoint, WavPlayer, WavRecorder
from lab.sip.message import user_of
from lab.sip.party import run
from lab.sip.sdp import SdpEdit
from lab.tasks import Tasks

MAX_REPORT_WAIT = 30.0  # s an AwaitReport may hold its control connection
FILED_KEPT = 256  # calls whose filing the phone remembers

log = logging.getLogger("mobile-phone")


@dataclass
class PhoneCall:
    number: str
    call_id: str | None
    policy: PhonePolicy
    answered: bool = False
    player: WavPlayer | None = None
    recorder: WavRecorder | None = None
    # time.monotonic() when the prompt started into the call / the recording started:
    # the same clock in every process of the machine, so latency can be measured across.
    sent_t0: float | None = None
    received_t0: float | None = None
    caller: str = ""
    outgoing: bool = False  # the phone dialled (a call to the browser user)
    answer_task: asyncio.Task[None] | None = None
    rang_at: float | None = None  # time.time() of 180 and of 200
    answered_at: float | None = None
    dtmf: str = ""
    held: bool = False
    events: list[dict[str, object]] = field(default_factory=list)

    def note(self, event: str, **details: object) -> None:
        self.events.append({"t": time.time(), "event": event, **details})


def write_json_atomic(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class Phone:
    def __init__(self, cfg: LabConfig, endpoint: SipEndpoint, party: Party) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self.party = party
        self.prompt = cfg.prompts_dir / "phone.wav"
        self.calls: dict[SipCall, PhoneCall] = {}
        self.policy: PhonePolicy | None = None  # set from the control socket
        #: call id -> set once its report (phone.json) is filed; the newest FILED_KEPT
        self.filed: collections.OrderedDict[str, asyncio.Event] = collections.OrderedDict()
        self.tasks = Tasks(party.name, log)
        self.control = ControlServer(
            party.host, cfg.control_port(party), self._hello, self._command, self.tasks
        )

    async def start(self) -> None:
        self.account = self.endpoint.account(self, user="phone", domain=self.party.host)
        await self.control.start()

    async def stop(self) -> None:
        self.control.close()
        for call in list(self.calls):
            call.hangup_with()
        self.calls.clear()

    # --- the control socket -----------------------------------------------------------------
    def current(self) -> tuple[SipCall, PhoneCall] | None:
        """The newest call: the one the phone's buttons act on."""
        return next(reversed(self.calls.items()), None)

    def _hello(self) -> Hello:
        return Hello(policy=(self.policy or self.cfg.phone_policy).header_value(), calls=len(self.calls))

    def _command(self, cmd: Command) -> Reply | Awaitable[Reply]:
        """Carry out a command from the control socket; ValueError for a bad value."""
        if isinstance(cmd, AwaitReport):
            call_dir(self.cfg, cmd.call_id)  # ValueError for a bad one
            return self._await_report(cmd.call_id, min(cmd.timeout, MAX_REPORT_WAIT))
        if isinstance(cmd, SetPolicy):
            self.policy = PhonePolicy.parse(cmd.value)
            return PolicySet(policy=self.policy.header_value())
        if isinstance(cmd, Dial):
            call_id = cmd.call_id or new_call_id("dialin-")
            call_dir(self.cfg, call_id)  # ValueError for a bad one
            own_number = normalize_number(cmd.caller or self.cfg.phone_number)
            return self._dial(normalize_user(cmd.to), own_number, call_id)
        current = self.current()
        if current is None:
            return Refused(reason=f"{cmd.KIND}: no call")
        call, state = current
        if isinstance(cmd, AnswerCall) and not state.answered:
            self._answer(call, state)
        elif isinstance(cmd, RejectCall) and not state.answered:
            call.answer_with(603, "Decline")
        elif isinstance(cmd, HangupCall):
            call.hangup_with()
        else:
            return Refused(reason=f"{cmd.KIND}: not possible now")
        return Done(cmd=cmd.KIND)

    def _filed_event(self, call_id: str) -> asyncio.Event:
        if call_id not in self.filed:
            self.filed[call_id] = asyncio.Event()
            while len(self.filed) > FILED_KEPT:
                self.filed.popitem(last=False)
        return self.filed[call_id]

    async def _await_report(self, call_id: str, timeout: float) -> Reply:
        try:
            await asyncio.wait_for(self._filed_event(call_id).wait(), timeout)
        except TimeoutError:
            return Refused(reason=f"{self.party.name} filed no report of {call_id} within {timeout:g} s")
        return Filed(call_id=call_id, path=str(call_dir(self.cfg, call_id) / "phone.json"))

    # AccountListener
    def on_registration(self, code: int, reason: str) -> None:
        pass

    def answer_edit(self, headers: dict[str, str], offer: str) -> SdpEdit | None:
        call_id = headers.get(CALL_HEADER.lower())
        return answering(self.cfg, call_id, self.party.host, "to-phone", offer) if call_id else None

    def admit_call(self) -> bool:
        return True

    def on_incoming_call(self, call: SipCall, user: str, headers: dict[str, str]) -> None:
        call.listener = self
        call_id = headers.get(CALL_HEADER.lower())
        try:
            if call_id:
                call_dir(self.cfg, call_id)
            policy = (
                PhonePolicy.parse(headers[ANSWER_HEADER.lower()])
                if ANSWER_HEADER.lower() in headers
                else self.policy or self.cfg.policy_for(user)
            )
        except ValueError as exc:
            log.warning("incoming call refused: %s", exc)
            call.answer_with(400, "Bad calllab header")
            return
        caller = user_of(headers.get("p-asserted-identity") or headers.get("from", ""))
        state = PhoneCall(user, call_id, policy, caller=caller)
        self.calls[call] = state
        log.info("incoming call to %s, call id %s, policy %s", user, call_id, policy.header_value())
        self.control.broadcast(
            Ringing(number=user, caller=state.caller, call_id=call_id, policy=policy.header_value())
        )
        if policy.action == "busy":
            call.answer_with(486, "Busy Here")
        elif policy.action == "reject":
            call.answer_with(603, "Decline")
        else:
            call.answer_with(180, "Ringing")
            state.rang_at = time.time()
            if policy.action == "answer":
                state.answer_task = self.tasks.start(
                    self._answer_later(call, policy.answer_after), f"answering {user}"
                )

    def _dial(self, to: str, own_number: str, call_id: str) -> Reply:
        """Call a user of the SIP server, through the mobile network (the PSTN gateway)."""
        call = SipCall(self.endpoint, self.account)
        call.listener = self
        call.sdp_edit = codecs.offer(codecs.default_offer(self.cfg, "mobile"))
        headers = {CALL_HEADER: call_id, "P-Asserted-Identity": f"<sip:{own_number}@{self.party.host}>"}
        try:
            call.dial(f"sip:{to}@{self.cfg.pstn.sip_address}", headers)
        except RuntimeError as exc:
            return Refused(reason=f"dial {to}: {exc}")
        self.calls[call] = PhoneCall(
            to, call_id, PhonePolicy("answer", 0.0), caller=own_number, outgoing=True
        )
        return Dialling(to=to, call_id=call_id)

    async def _answer_later(self, call: SipCall, delay: float) -> None:
        await asyncio.sleep(delay)
        if call in self.calls:
            self._answer(call, self.calls[call])

    def _answer(self, call: SipCall, state: PhoneCall) -> None:
        state.answered = True
        state.answered_at = time.time()
        call.answer_with(200, "OK")
        self.control.broadcast(Answered(number=state.number, caller=state.caller))

    # CallListener
    def on_media_active(self, call: SipCall) -> None:
        state = self.calls.get(call)
        audio = call.audio()
        if state is None or audio is None:
            return
        if state.player is None:  # one per call, so every call hears the prompt from its start
            state.player = WavPlayer(self.prompt)
            state.sent_t0 = time.monotonic()
        if state.call_id and state.recorder is None:
            folder = call_dir(self.cfg, state.call_id)
            folder.mkdir(parents=True, exist_ok=True)
            state.recorder = WavRecorder(folder / "phone_received.wav")
            state.received_t0 = time.monotonic()
        # Again after every re-INVITE (hold, resume): pjsua gives the stream a new bridge port.
        state.player.port.startTransmit(audio)
        if state.recorder is not None and state.recorder.port is not None:
            audio.startTransmit(state.recorder.port)

    def on_media_state(self, call: SipCall, state: str) -> None:
        phone_call = self.calls.get(call)
        if phone_call is None:
            return
        if state == "remote_hold" and not phone_call.held:
            phone_call.held = True
            phone_call.note("held")
            self.control.broadcast(Held())
        elif state == "active" and phone_call.held:
            phone_call.held = False
            phone_call.note("resumed")
            self.control.broadcast(Resumed())

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        phone_call = self.calls.get(call)
        if phone_call is not None:
            phone_call.dtmf += digit
            phone_call.note("dtmf", digit=digit, method=method)
            self.control.broadcast(DigitReceived(digit=digit, method=method, digits=phone_call.dtmf))
            log.info("DTMF %s (%s)", digit, method)

    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None:
        state = self.calls.get(call)
        if state is not None and state.outgoing and snap.state == "EARLY":
            self.control.broadcast(Ringback(to=state.number))
        if state is not None and state.outgoing and snap.state == "CONFIRMED" and not state.answered:
            state.answered = True
            self.control.broadcast(Answered(number=state.number, caller=state.caller))
        if state is None or snap.state != "DISCONNECTED":
            return
        del self.calls[call]
        if state.answer_task:
            state.answer_task.cancel()
        state.player = None
        self.control.broadcast(Ended(code=snap.status_code, reason=snap.reason, number=state.number))
        self.tasks.start(self._file_report(state, snap), f"filing the report of {state.call_id}")

    async def _file_report(self, state: PhoneCall, snap: CallSnapshot) -> None:
        """Write phone.json once the recording is complete: readers wait for that file."""
        if state.recorder and not await state.recorder.close():
            log.warning("recording %s was not finalised", state.recorder.path)
        if state.call_id:
            folder = call_dir(self.cfg, state.call_id)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.prompt, folder / "phone_sent.wav")
            write_json_atomic(
                folder / "phone.json",
                {
                    "number": state.number,
                    "policy": state.policy.header_value(),
                    "answered": state.answered,
                    "end_code": snap.status_code,
                    "end_reason": snap.reason,
                    "received": str(folder / "phone_received.wav") if state.recorder else None,
                    "sent": str(folder / "phone_sent.wav"),
                    "sent_t0": state.sent_t0,
                    "received_t0": state.received_t0,
                    "answered_by": f"{self.party.name} {self.party.host}" if state.answered else None,
                    "dtmf_received": state.dtmf,
                    "caller": state.caller,
                    "answer_delay": (state.answered_at - state.rang_at)
                    if state.answered_at and state.rang_at
                    else None,
                    "events": state.events,
                },
            )
            self._filed_event(state.call_id).set()


def normalize_user(text: str) -> str:
    """A SIP user to dial: a login like VKP009 or a number."""
    if not text or len(text) > 64 or not all(c.isalnum() or c in "+-_.*#" for c in text):
        raise ValueError(f"{text[:40]!r} is not a SIP user or number")
    return text


def main() -> None:
    """`python -m lab.sip.phone --config LAB.json [--party "Mobile phone 2"]`"""
    run(
        "Mobile phone",
        lambda cfg: codecs.enabled(codecs.default_offer(cfg, "mobile"), codecs.LEG_CODECS["mobile"]),
        Phone,
    )


if __name__ == "__main__":
    main()
