"""The JSON messages between the browser-style client and the gateway (over a WebSocket),
and the call statuses of the seed's WebSDK."""

from __future__ import annotations

import enum
import json
from typing import Any


class CallStatus(enum.StrEnum):
    PENDING = "PENDING"  # call() was invoked, nothing answered yet
    TRYING = "TRYING"  # the gateway sent the INVITE
    RING = "RING"  # 180/183 came back
    ESTABLISHED = "ESTABLISHED"  # 200 OK: both sides talk
    HOLD = "HOLD"
    FINISH = "FINISH"  # ended after it was established
    FAILED = "FAILED"  # ended before it was established (SIP code and reason say why)
    BUSY = "BUSY"  # 486/600

    @property
    def final(self) -> bool:
        return self in (CallStatus.FINISH, CallStatus.FAILED, CallStatus.BUSY)


def status_text(status: str, sip_code: int | None = None, reason: str = "") -> str:
    """A call status as people read it, e.g. "FAILED 486 Busy Here"; unknown parts left out."""
    return " ".join(str(part) for part in (status, sip_code, reason) if part)


DTMF_DIGITS = "0123456789*#ABCD"

# client -> gateway: connect {sip}, call {call_id, callee, visible_name, sdp, headers},
#                    hangup | hold | unhold {call_id}, dtmf {call_id, digits, method}, ping
# gateway -> client: connected, failed {code, reason}, sdp {call_id, sdp},
#                    status {call_id, status, sip_code, reason},
#                    event {call_id, event: dtmf, digit, method}, pong, error {[call_id], reason}


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def decode(text: str | bytes) -> dict[str, Any]:
    try:
        msg = json.loads(text)
    except ValueError:
        raise ValueError("signaling message is not JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ValueError("signaling message has no 'type'")
    return msg
