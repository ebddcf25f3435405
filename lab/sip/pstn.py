"""One channel of the PSTN/GSM gateway: a B2BUA between the SIP server and the mobile phone.

Leg A is the incoming one; for it the channel places leg B on the other side, maps B's
answers (180, 200, 486, 603, no answer) back onto leg A and bridges the audio. A call from
the SIP server goes to the phone (B offers the call's mobile codec, else GSM 06.10 first, as
a mobile network would); a call from the phone goes to the SIP server, for a user of it.

A channel carries one call, like a GSM line: with pjsua2's 4 calls per process that leaves
room for the third leg of a transfer. The SIP server hunts for a free channel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from lab.config import ANSWER_HEADER, CALL_HEADER, CODECS_HEADER, IMPAIR_HEADER, LabConfig, Party
from lab.network import detour
from lab.network.impairment import ImpairmentError
from lab.network.legs import from_header
from lab.sip import codecs
from lab.sip.endpoint import MEDIA_TIMEOUT_CAUSE, CallSnapshot, MediaWatchdog, SipCall, SipEndpoint, connect
from lab.sip.message import user_of
from lab.sip.party import run
from lab.sip.sdp import SdpEdit, compose, parse_sdp
from lab.tasks import Tasks

log = logging.getLogger("pstn-gateway")

# Failures the phone side gives that the caller side should see unchanged.
_PASS_THROUGH = {404, 408, 480, 486, 487, 488, 600, 603}


@dataclass(eq=False)
class Leg:
    """What the channel knows about one of its calls, from its start to DISCONNECTED."""

    call: SipCall
    incoming: bool = False  # a call that came to this channel (leg A, or a replacing call)
    peer: Leg | None = None  # the leg its audio, answers and hangup go to
    far: str = ""  # who is at the other end, for the log and the Reason of a media timeout
    media_up: bool = False
    held: bool = False  # this channel held it, to mirror a hold on its peer
    no_answer: asyncio.TimerHandle | None = None  # leg A, until leg B answers
    watchdog: MediaWatchdog | None = None
    transfer_from: Leg | None = None  # a transfer's new call, until it is answered: the REFERred leg

    def pair(self, other: Leg) -> None:
        self.peer, other.peer = other, self

    def forget(self) -> None:
        """Drop its pairing, its no-answer timer, its hold and its watchdog."""
        self.peer = None
        self.media_up = self.held = False
        self.far = ""
        if self.no_answer is not None:
            self.no_answer.cancel()
            self.no_answer = None
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None

    def unpair(self) -> Leg | None:
        """Forget this leg and its peer; returns the peer, if it was still paired."""
        other = self.peer
        self.forget()
        if other is not None:
            other.forget()
        return other


class PstnGateway:
    def __init__(self, cfg: LabConfig, endpoint: SipEndpoint, party: Party) -> None:
        self.cfg = cfg
        self.party = party
        self.endpoint = endpoint
        self.legs: dict[SipCall, Leg] = {}  # every leg of this channel's call until DISCONNECTED
        self._busy = False  # carrying a call (set on the pjsua thread): guarded by _lock
        self._lock = threading.Lock()
        self.tasks = Tasks(party.name, log)

    async def start(self) -> None:
        self.account = self.endpoint.account(self, user="pstn", domain=self.cfg.pstn.host)

    async def stop(self) -> None:
        for leg in list(self.legs.values()):
            if leg.peer is not None:
                leg.call.hangup_with()
        self.legs.clear()

    def _new_call(self) -> SipCall:
        return SipCall(self.endpoint, self.account)

    def _adopt(self, call: SipCall, incoming: bool = False) -> Leg:
        call.listener = self
        leg = self.legs[call] = Leg(call, incoming)
        return leg

    def on_registration(self, code: int, reason: str) -> None:
        pass

    def admit_call(self) -> bool:
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            return True

    def _refusal(self, call: SipCall, headers: dict[str, str]) -> tuple[int, str] | None:
        """Why this channel must not take the call, as a SIP code and reason; None to take it."""
        host = call.source.rsplit(":", 1)[0]
        trusted = (self.cfg.sipserver.host, self.cfg.pstn.host, *(p.host for p in self.cfg.phones))
        if host not in (*trusted, *self.cfg.pstn_trusted_hosts):
            return 403, f"PSTN gateway takes calls only from its SIP server {self.cfg.sipserver.host}"
        if headers.get("max-forwards", "").strip() == "0":
            return 483, "Too Many Hops"
        try:
            codecs.from_header(headers.get(CODECS_HEADER.lower(), ""))
        except codecs.CodecError as exc:
            return 488, f"PSTN gateway: {exc}"
        if host == self.cfg.sipserver.host or host in self.cfg.pstn_trusted_hosts:
            return self._codec_refusal(call.offer)
        return None

    def _codec_refusal(self, offer: str) -> tuple[int, str] | None:
        """488 naming both lists when an offer from the SIP side has no codec this gateway
        takes. pjsua would refuse it too, but before the call reaches us and saying only
        "Not Acceptable Here": so pjsua enables every codec and the check is ours."""
        audio = next((m for m in parse_sdp(offer) if m.media == "audio"), None)
        if audio is None:
            return None  # no offer in the INVITE: the codec is agreed in the ACK
        offered = [
            codecs.lab_name(c.name, c.rate) or c.name.upper()
            for c in audio.codecs
            if c.name.lower() != "telephone-event"
        ]
        if set(offered) & set(self.cfg.pstn_codecs):
            return None
        return (
            488,
            f"offered {', '.join(offered)}; the PSTN gateway accepts {', '.join(self.cfg.pstn_codecs)}",
        )

    def on_incoming_call(self, call: SipCall, user: str, headers: dict[str, str]) -> None:
        refusal = self._refusal(call, headers)
        if refusal is not None:
            log.warning("refused a call from %s: %s %s", call.source, *refusal)
            call.answer_with(*refusal)
            with self._lock:
                self._busy = bool(self.legs)
            return
        try:
            impairments = from_header(headers.get(IMPAIR_HEADER.lower(), ""))
        except ImpairmentError as exc:
            log.warning("refused a call with a bad %s: %s", IMPAIR_HEADER, exc)
            call.answer_with(400, f"Bad {IMPAIR_HEADER}")
            with self._lock:
                self._busy = bool(self.legs)
            return
        a = self._adopt(call, incoming=True)
        b = self._adopt(self._new_call())
        a.pair(b)
        forward = {
            name: headers[name.lower()]
            for name in (CALL_HEADER, ANSWER_HEADER, IMPAIR_HEADER)
            if name.lower() in headers
        }
        # Caller id on the mobile leg, as networks carry it (the B leg's From is this gateway).
        caller = user_of(headers.get("p-asserted-identity") or headers.get("from", ""))
        if caller:
            forward["P-Asserted-Identity"] = f"<sip:{caller}@{self.cfg.pstn.host}>"
        caller_phone = self._from_phone(headers)
        phone = self.cfg.phone_for(user, self.party) if caller_phone is None else caller_phone
        sip_side = "the SIP side"
        a.far, b.far = (phone.name, sip_side) if caller_phone else (sip_side, phone.name)
        target = self.cfg.sipserver.sip_address if caller_phone else phone.sip_address
        call_id = headers.get(CALL_HEADER.lower(), "")
        chosen = codecs.from_header(headers.get(CODECS_HEADER.lower(), "")).get("mobile")
        if caller_phone:  # leg B offers to the SIP side what the lab's SIP leg offers
            b.call.sdp_edit = codecs.offer(codecs.default_offer(self.cfg, "sip"))
        else:  # leg B offers the call's mobile codec, through the mobile network if impaired
            b.call.sdp_edit = compose(
                codecs.offer([chosen] if chosen else codecs.default_offer(self.cfg, "mobile")),
                detour.offering(self.cfg, "mobile", call_id, self.cfg.pstn.host, "to-browser", impairments)
                if call_id
                else None,
            )
        log.info("call to %s: dialling %s", user, "the SIP server" if caller_phone else phone.name)
        a.no_answer = asyncio.get_running_loop().call_later(self.cfg.no_answer_timeout, self._no_answer, a)
        try:
            b.call.dial(f"sip:{user}@{target}", forward)
        except RuntimeError as exc:
            log.warning("dialling %s failed: %s", target, exc)
            del self.legs[b.call]  # it never got a call id, so no DISCONNECTED either
            a.unpair()
            a.call.answer_with(503, f"PSTN gateway: cannot reach {target}")

    def answer_edit(self, headers: dict[str, str], offer: str) -> SdpEdit | None:
        """Leg A answers with a codec this gateway takes from the SIP side (when it takes
        one: else on_incoming_call refuses the call), on the network its offer came from."""
        call_id = headers.get(CALL_HEADER.lower())
        takes = None
        if self._from_phone(headers) is None and self._codec_refusal(offer) is None:
            takes = codecs.offer(self.cfg.pstn_codecs)
        network = (
            detour.answering(self.cfg, call_id, self.cfg.pstn.host, "to-phone", offer) if call_id else None
        )
        return compose(takes, network)

    def _from_phone(self, headers: dict[str, str]) -> Party | None:
        """The lab phone that placed the call (its Via is the first), if one did."""
        via = headers.get("via", "")
        return next((p for p in self.cfg.phones if f"SIP/2.0/UDP {p.host}:" in via), None)

    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None:
        leg = self.legs.get(call)
        if leg is None:
            return
        if snap.state == "DISCONNECTED":
            del self.legs[call]
            if not self.legs:
                with self._lock:
                    self._busy = False
        if leg.incoming:
            if snap.state == "DISCONNECTED":
                b = leg.unpair()
                if b is not None:
                    b.call.hangup_with()  # CANCEL while ringing, BYE once answered
            return
        origin = leg.transfer_from
        if origin is not None and snap.state in ("CONFIRMED", "DISCONNECTED"):
            leg.transfer_from = None
            if snap.state == "DISCONNECTED":  # transfer failed: the phone goes back to the caller
                b, leg.peer = leg.peer, None
                if b is not None:
                    b.pair(origin)
                return
        if snap.state == "DISCONNECTED":
            a = leg.unpair()
            if a is None:
                return
            code = snap.status_code
            if code in _PASS_THROUGH:
                a.call.hangup_with(code, snap.reason)
            elif code >= 300:
                a.call.hangup_with(503, f"PSTN gateway: mobile phone answered {code} {snap.reason}")
            else:
                a.call.hangup_with()
            return
        a = leg.peer
        if a is None:
            return
        if snap.state == "EARLY" and snap.status_code in (180, 183):
            a.call.answer_with(180, "Ringing")
        elif snap.state == "CONFIRMED":
            if a.no_answer is not None:
                a.no_answer.cancel()
                a.no_answer = None
            a.call.answer_with(200, "OK")

    def _no_answer(self, a: Leg) -> None:
        a.no_answer = None
        b = a.unpair()
        log.info("no answer within %g s", self.cfg.no_answer_timeout)
        a.call.hangup_with(480, f"No answer within {self.cfg.no_answer_timeout:g} s")
        if b is not None:
            b.call.hangup_with()  # CANCEL to the phone

    def _media_timeout(self, call: SipCall) -> None:
        leg = self.legs.get(call)
        if leg is None:
            return
        silent = leg.far or "the far end"
        other = leg.unpair()
        cause = f"PSTN gateway: no RTP from {silent} for {self.cfg.media_timeout:g} s"
        log.warning("%s; ending the call", cause)
        call.hangup_with()
        if other is not None:
            other.call.hangup_with(cause=cause, cause_code=MEDIA_TIMEOUT_CAUSE)

    def on_media_active(self, call: SipCall) -> None:
        leg = self.legs.get(call)
        if leg is None:
            return
        if leg.watchdog is None:
            leg.watchdog = MediaWatchdog(call, self._media_timeout, self.cfg.media_timeout, self.tasks)
        leg.media_up = True
        other = leg.peer
        if other is None or not other.media_up:
            return
        a_audio, b_audio = call.audio(), other.call.audio()
        if a_audio is not None and b_audio is not None:
            connect(a_audio, b_audio)

    def on_media_state(self, call: SipCall, state: str) -> None:
        """Mirror hold and resume from one leg onto the other, so it shows end to end."""
        leg = self.legs.get(call)
        other = leg.peer if leg is not None else None
        if leg is None or other is None:
            return
        for each in (leg, other):
            if each.watchdog is not None:
                each.watchdog.paused = state != "active"
        try:
            if state == "remote_hold" and not other.held:
                other.held = True
                other.call.hold()
            elif state == "active" and other.held:
                other.held = False
                other.call.unhold()
        except RuntimeError as exc:
            log.warning("mirroring %s onto the other leg failed: %s", state, exc)

    # Transfer: the caller REFERs its leg; the phone's leg goes over to the new call pjsua
    # places to the Refer-To. Blind: the SIP server hands it to the target phone directly.
    # Attended: it goes to the channel holding the consultation call, which replaces that
    # call's leg with it (on_replaced).
    def on_transferring(self, referred: SipCall, c: SipCall) -> None:
        new = self._adopt(c)
        old = self.legs.get(referred)
        b = old.peer if old is not None else None
        if old is None or b is None:
            return
        old.peer = None
        self._pair(b, new, "the transfer target")
        new.transfer_from = old
        log.info("transfer: the phone's leg goes over to a new call")

    def on_replaced(self, old: SipCall, new: SipCall) -> None:
        """An INVITE with Replaces took over `old` (the consultation call's leg): the phone
        on the other side now talks through `new`; pjsua ends `old` itself."""
        replacing = self._adopt(new, incoming=True)
        replaced = self.legs.get(old)
        if replaced is None:
            return
        b = replaced.peer
        replaced.forget()
        if b is not None:
            self._pair(b, replacing, "the transferred caller")
            log.info("attended transfer: the phone's leg is joined to the replacing call")

    def _pair(self, phone_leg: Leg, new: Leg, far: str) -> None:
        """Pair the phone's leg with a new call; the phone's leg resumes if we held it."""
        phone_leg.pair(new)
        new.far = far
        if phone_leg.held:
            phone_leg.held = False
            try:
                phone_leg.call.unhold()
            except RuntimeError as exc:
                log.warning("resuming the phone's leg failed: %s", exc)

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        leg = self.legs.get(call)
        if leg is not None and leg.peer is not None:
            try:
                leg.peer.call.send_dtmf(digit, method)
            except RuntimeError as exc:
                log.warning("forwarding DTMF %s failed: %s", digit, exc)


def main() -> None:
    run(
        "PSTN gateway ch1",
        lambda cfg: codecs.enabled(codecs.default_offer(cfg, "mobile"), codecs.LEG_CODECS["sip"]),
        PstnGateway,
    )


if __name__ == "__main__":
    main()
