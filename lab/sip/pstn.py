"""One channel of the PSTN/GSM gateway: a B2BUA between the SIP server and the mobile phone.

Leg A is the incoming one; for it the channel places leg B on the other side, maps B's
answers (180, 200, 486, 603, no answer) back onto leg A and bridges the audio. A call from
the SIP server goes to the phone (B offers the mobile codec, GSM 06.10, first, as a mobile
network would); a call from the phone goes to the SIP server, for a user of it.

A channel carries one call, like a GSM line: with pjsua2's 4 calls per process that leaves
room for the third leg of a transfer. The SIP server hunts for a free channel.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from lab.config import ANSWER_HEADER, CALL_HEADER, LabConfig, Party
from lab.sip.endpoint import CallSnapshot, MediaWatchdog, SipCall, SipEndpoint, connect
from lab.sip.message import user_of
from lab.sip.party import run

log = logging.getLogger("pstn-gateway")

# Failures the phone side gives that the caller side should see unchanged.
_PASS_THROUGH = {404, 408, 480, 486, 487, 600, 603}


class PstnGateway:
    def __init__(self, cfg: LabConfig, endpoint: SipEndpoint, party: Party) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self.peer: dict[SipCall, SipCall] = {}
        self.a_legs: set[SipCall] = set()
        self.media_up: set[SipCall] = set()
        self.held: set[SipCall] = set()  # legs this gateway put on hold to mirror the other side
        self.timers: dict[SipCall, asyncio.TimerHandle] = {}  # leg A -> its no-answer timer
        self.watchdogs: dict[SipCall, MediaWatchdog] = {}
        self.far: dict[SipCall, str] = {}  # who is at the other end of each leg
        self.transfer_from: dict[SipCall, SipCall] = {}  # transfer call -> the leg that REFERred
        self.legs: set[SipCall] = set()  # every leg of this channel's call until DISCONNECTED
        self._busy = False  # carrying a call (set on the pjsua thread): guarded by _lock
        self._lock = threading.Lock()

    async def start(self) -> None:
        self.account = self.endpoint.account(self, user="pstn", domain=self.cfg.pstn.host)

    async def stop(self) -> None:
        for call in list(self.peer):
            call.hangup_with()
        self.peer.clear()

    def on_registration(self, code: int, reason: str) -> None:
        pass

    def admit_call(self) -> bool:
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            return True

    def on_incoming_call(self, a: SipCall, user: str, headers: dict[str, str]) -> None:
        a.listener = self
        b = SipCall(self.endpoint, self.account)
        b.listener = self
        self.peer[a], self.peer[b] = b, a
        self.a_legs.add(a)
        self.legs.update((a, b))
        forward = {
            name: headers[name.lower()] for name in (CALL_HEADER, ANSWER_HEADER) if name.lower() in headers
        }
        # Caller id on the mobile leg, as networks carry it (the B leg's From is this gateway).
        caller = user_of(headers.get("p-asserted-identity") or headers.get("from", ""))
        if caller:
            forward["P-Asserted-Identity"] = f"<sip:{caller}@{self.cfg.pstn.host}>"
        via = headers.get("via", "")
        caller_phone = next((p for p in self.cfg.phones if f"SIP/2.0/UDP {p.host}:" in via), None)
        phone = self.cfg.phone_for(user) if caller_phone is None else caller_phone
        sip_side = "the SIP side"
        self.far[a], self.far[b] = (phone.name, sip_side) if caller_phone else (sip_side, phone.name)
        target = self.cfg.sipserver.sip_address if caller_phone else phone.sip_address
        log.info("call to %s: dialling %s", user, "the SIP server" if caller_phone else phone.name)
        self.timers[a] = asyncio.get_running_loop().call_later(self.cfg.no_answer_timeout, self._no_answer, a)
        try:
            b.dial(f"sip:{user}@{target}", forward)
        except RuntimeError as exc:
            log.warning("dialling %s failed: %s", target, exc)
            self.legs.discard(b)  # it never got a call id, so no DISCONNECTED either
            self._unpair(a)
            a.answer_with(503, f"PSTN gateway: cannot reach {target}")

    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None:
        if snap.state == "DISCONNECTED":
            self.legs.discard(call)
            if not self.legs:
                with self._lock:
                    self._busy = False
        if call in self.a_legs:
            if snap.state == "DISCONNECTED":
                self.a_legs.discard(call)
                b = self._unpair(call)
                if b is not None:
                    b.hangup_with()  # CANCEL while ringing, BYE once answered
            return
        if call in self.transfer_from:
            origin = self.transfer_from[call]
            if snap.state == "CONFIRMED":
                del self.transfer_from[call]
            elif snap.state == "DISCONNECTED":  # transfer failed: the phone goes back to the caller
                del self.transfer_from[call]
                b = self.peer.pop(call, None)
                if b is not None:
                    self.peer[b], self.peer[origin] = origin, b
                return
        if snap.state == "DISCONNECTED":
            a = self._unpair(call)
            if a is None:
                return
            code = snap.status_code
            if code in _PASS_THROUGH:
                a.hangup_with(code, snap.reason)
            elif code >= 300:
                a.hangup_with(503, f"PSTN gateway: mobile phone answered {code} {snap.reason}")
            else:
                a.hangup_with()
            return
        a = self.peer.get(call)
        if a is None:
            return
        if snap.state == "EARLY" and snap.status_code in (180, 183):
            a.answer_with(180, "Ringing")
        elif snap.state == "CONFIRMED":
            timer = self.timers.pop(a, None)
            if timer is not None:
                timer.cancel()
            a.answer_with(200, "OK")

    def _no_answer(self, a: SipCall) -> None:
        b = self._unpair(a)
        log.info("no answer within %g s", self.cfg.no_answer_timeout)
        a.hangup_with(480, f"No answer within {self.cfg.no_answer_timeout:g} s")
        if b is not None:
            b.hangup_with()  # CANCEL to the phone

    def _media_timeout(self, leg: SipCall) -> None:
        silent = self.far.get(leg, "the far end")
        other = self._unpair(leg)
        cause = f"PSTN gateway: no RTP from {silent} for {self.cfg.media_timeout:g} s"
        log.warning("%s; ending the call", cause)
        leg.hangup_with()
        if other is not None:
            other.hangup_with(cause=cause)

    def on_media_active(self, call: SipCall) -> None:
        if call not in self.watchdogs:
            self.watchdogs[call] = MediaWatchdog(call, self._media_timeout, self.cfg.media_timeout)
        self.media_up.add(call)
        other = self.peer.get(call)
        if other is None or other not in self.media_up:
            return
        a_audio, b_audio = call.audio(), other.audio()
        if a_audio is not None and b_audio is not None:
            connect(a_audio, b_audio)

    def on_media_state(self, call: SipCall, state: str) -> None:
        """Mirror hold and resume from one leg onto the other, so it shows end to end."""
        other = self.peer.get(call)
        if other is None:
            return
        for leg in (call, other):
            if leg in self.watchdogs:
                self.watchdogs[leg].paused = state != "active"
        try:
            if state == "remote_hold" and other not in self.held:
                self.held.add(other)
                other.hold()
            elif state == "active" and other in self.held:
                self.held.discard(other)
                other.unhold()
        except RuntimeError as exc:
            log.warning("mirroring %s onto the other leg failed: %s", state, exc)

    # Transfer: the caller REFERs its leg; the phone's leg goes over to the new call pjsua
    # places to the Refer-To. Blind: the SIP server hands it to the target phone directly.
    # Attended: it goes to the channel holding the consultation call, which replaces that
    # call's leg with it (on_replaced).
    def on_transferring(self, referred: SipCall, c: SipCall) -> None:
        c.listener = self
        self.legs.add(c)
        b = self.peer.pop(referred, None)
        if b is None:
            return
        self._pair(b, c, "the transfer target")
        self.transfer_from[c] = referred
        log.info("transfer: the phone's leg goes over to a new call")

    def on_replaced(self, old: SipCall, new: SipCall) -> None:
        """An INVITE with Replaces took over `old` (the consultation call's leg): the phone
        on the other side now talks through `new`; pjsua ends `old` itself."""
        new.listener = self
        self.legs.add(new)
        self.a_legs.add(new)
        b = self.peer.get(old)
        self._forget(old)
        if b is not None:
            self._pair(b, new, "the transferred caller")
            log.info("attended transfer: the phone's leg is joined to the replacing call")

    def _pair(self, phone_leg: SipCall, new: SipCall, far: str) -> None:
        """Pair the phone's leg with a new call; the phone's leg resumes if we held it."""
        self.peer[phone_leg], self.peer[new] = new, phone_leg
        self.far[new] = far
        if phone_leg in self.held:
            self.held.discard(phone_leg)
            try:
                phone_leg.unhold()
            except RuntimeError as exc:
                log.warning("resuming the phone's leg failed: %s", exc)

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        other = self.peer.get(call)
        if other is not None:
            try:
                other.send_dtmf(digit, method)
            except RuntimeError as exc:
                log.warning("forwarding DTMF %s failed: %s", digit, exc)

    def _unpair(self, leg: SipCall) -> SipCall | None:
        """Forget the pairing of `leg`; returns the other leg, if it was still paired."""
        other = self.peer.get(leg)
        self._forget(leg)
        if other is not None:
            self._forget(other)
        return other

    def _forget(self, leg: SipCall) -> None:
        """Drop everything this channel keeps about `leg`: pairing, timers, hold, watchdog."""
        self.peer.pop(leg, None)
        self.media_up.discard(leg)
        self.far.pop(leg, None)
        self.held.discard(leg)
        timer = self.timers.pop(leg, None)
        if timer is not None:
            timer.cancel()
        watchdog = self.watchdogs.pop(leg, None)
        if watchdog is not None:
            watchdog.stop()


def main() -> None:
    run("PSTN gateway ch1", lambda cfg: [cfg.mobile_codec, "PCMU", "PCMA"], PstnGateway)


if __name__ == "__main__":
    main()
