"""The mobile phone: rings, answers per policy, plays its speech prompt, records what it hears.

What it recorded of a call goes to captures/<call id>/ with a phone.json written last, so a
reader knows the recording is complete when that file exists.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import ANSWER_HEADER, CALL_HEADER, LabConfig, PhonePolicy, call_dir
from lab.sip.endpoint import CallSnapshot, SipCall, SipEndpoint, WavPlayer, WavRecorder
from lab.sip.party import run

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
    answer_task: asyncio.Task[None] | None = None
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
    def __init__(self, cfg: LabConfig, endpoint: SipEndpoint) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self.prompt = cfg.prompts_dir / "phone.wav"
        self.calls: dict[SipCall, PhoneCall] = {}

    async def start(self) -> None:
        self.account = self.endpoint.account(self, user="phone", domain=self.cfg.phone.host)

    async def stop(self) -> None:
        for call in list(self.calls):
            call.hangup_with()
        self.calls.clear()

    # AccountListener
    def on_registration(self, code: int, reason: str) -> None:
        pass

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
                else self.cfg.policy_for(user)
            )
        except ValueError as exc:
            log.warning("incoming call refused: %s", exc)
            call.answer_with(400, "Bad calllab header")
            return
        state = PhoneCall(user, call_id, policy)
        self.calls[call] = state
        log.info("incoming call to %s, call id %s, policy %s", user, call_id, policy.header_value())
        if policy.action == "busy":
            call.answer_with(486, "Busy Here")
        elif policy.action == "reject":
            call.answer_with(603, "Decline")
        else:
            call.answer_with(180, "Ringing")
            if policy.action == "answer":
                state.answer_task = asyncio.ensure_future(self._answer_later(call, policy.answer_after))

    async def _answer_later(self, call: SipCall, delay: float) -> None:
        await asyncio.sleep(delay)
        if call in self.calls:
            self.calls[call].answered = True
            call.answer_with(200, "OK")

    # CallListener
    def on_media_active(self, call: SipCall) -> None:
        state = self.calls.get(call)
        audio = call.audio()
        if state is None or audio is None:
            return
        if state.player is None:  # one per call, so every call hears the prompt from its start
            state.player = WavPlayer(self.prompt)
            state.player.port.startTransmit(audio)
            state.sent_t0 = time.monotonic()
        if state.call_id and state.recorder is None:
            folder = call_dir(self.cfg, state.call_id)
            folder.mkdir(parents=True, exist_ok=True)
            state.recorder = WavRecorder(folder / "phone_received.wav")
            audio.startTransmit(state.recorder.port)
            state.received_t0 = time.monotonic()

    def on_media_state(self, call: SipCall, state: str) -> None:
        phone_call = self.calls.get(call)
        if phone_call is None:
            return
        if state == "remote_hold" and not phone_call.held:
            phone_call.held = True
            phone_call.note("held")
        elif state == "active" and phone_call.held:
            phone_call.held = False
            phone_call.note("resumed")

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        phone_call = self.calls.get(call)
        if phone_call is not None:
            phone_call.dtmf += digit
            phone_call.note("dtmf", digit=digit, method=method)
            log.info("DTMF %s (%s)", digit, method)

    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None:
        state = self.calls.get(call)
        if state is None or snap.state != "DISCONNECTED":
            return
        del self.calls[call]
        if state.answer_task:
            state.answer_task.cancel()
        state.player = None
        asyncio.ensure_future(self._file_report(state, snap))

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
                    "dtmf_received": state.dtmf,
                    "events": state.events,
                },
            )


def main() -> None:
    run("Mobile phone", lambda cfg: [cfg.mobile_codec], Phone)


if __name__ == "__main__":
    main()
