"""What a gateway call tells its client, as a pure state machine: SIP call states and
media states in, the seed's call statuses out. No I/O, so it is tested without a lab."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.signaling import CallStatus

_BUSY_CODES = {486, 600}


@dataclass(frozen=True)
class Report:
    """A status to send to the client."""

    status: CallStatus
    code: int | None = None
    reason: str = ""


@dataclass
class CallState:
    incoming: bool = False  # someone called the client (its "incoming" message was the ring)
    established: bool = False
    on_hold: bool = False
    ended: bool = False
    hangup_requested: bool = False
    end_reason: str = ""  # set when the gateway itself ends the call (transfer, timeout, reject)
    end_code: int | None = None  # ... and the code its FINISH carries when not the SIP one

    def sip_state(
        self, state: str, code: int, reason: str, remote_reason: str = "", remote_cause: int | None = None
    ) -> Report | None:
        """A SIP call state (EARLY, CONFIRMED, DISCONNECTED, ...) with its last status code;
        `remote_reason` and `remote_cause` are the far end's BYE Reason header, if any: a
        FINISH carries its cause (408 when the far end lost the media), so a client can
        tell a normal end (200) from a broken call."""
        if self.ended:
            return None
        if state == "EARLY" and code in (180, 183) and not self.incoming:
            return Report(CallStatus.RING, code, reason)
        if state == "CONFIRMED" and not self.established:
            self.established = True
            return Report(CallStatus.ESTABLISHED, 200, reason)
        if state != "DISCONNECTED":
            return None
        self.ended = True
        if self.established:
            remote = f"remote hangup ({remote_reason})" if remote_reason else "remote hangup"
            who = self.end_reason or ("hangup" if self.hangup_requested else remote)
            return Report(CallStatus.FINISH, self.end_code or remote_cause or code, who)
        if code in _BUSY_CODES:
            return Report(CallStatus.BUSY, code, reason)
        if self.hangup_requested:
            return Report(CallStatus.FAILED, code, f"{self.end_reason or 'cancelled'} ({reason})")
        return Report(CallStatus.FAILED, code, reason)

    def media_state(self, state: str) -> Report | None:
        """A media state of the SIP leg: active, local_hold, remote_hold, none."""
        if self.ended or not self.established:
            return None
        if state in ("local_hold", "remote_hold") and not self.on_hold:
            self.on_hold = True
            by = "on hold" if state == "local_hold" else "held by the far end"
            return Report(CallStatus.HOLD, None, by)
        if state == "active" and self.on_hold:
            self.on_hold = False
            return Report(CallStatus.ESTABLISHED, None, "resumed")
        return None

    def fail(self, code: int, reason: str) -> Report:
        """The gateway gives up on the call before (or instead of) SIP."""
        self.ended = True
        return Report(CallStatus.FAILED, code, reason)


_AUDIO_LINE = re.compile(r"^m=audio [0-9]+ [A-Z/]+ [0-9 ]+$", re.MULTILINE)
# WebRTC cannot start without these; aiortc finds out with an assert only after the SIP
# INVITE has gone out.
_REQUIRED = ("a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:")


def offer_problem(sdp: str) -> str | None:
    """Why an SDP offer cannot be bridged to a SIP call (checked before any SIP), or None."""
    if "\x00" in sdp:
        return "the SDP holds NUL characters"
    if not sdp.startswith("v=0"):
        return "the SDP does not start with v=0"
    lines = sdp.replace("\r\n", "\n")
    if not _AUDIO_LINE.search(lines):
        return "the SDP has no audio m-line"
    missing = [attr.rstrip(":") for attr in _REQUIRED if f"\n{attr}" not in lines]
    if missing:
        return f"the SDP has no {' and no '.join(missing)} (WebRTC needs them)"
    return None
