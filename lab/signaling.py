"""The JSON messages between the browser-style client and the gateway (over a WebSocket),
and the call statuses of the seed's WebSDK.

Every message is a JSON object whose "type" names it; the classes below are the whole
protocol, in both directions. The gateway decodes with CLIENT_MESSAGES, the client with
GATEWAY_MESSAGES; a message that does not match gets MessageError naming the field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from lab.typedjson import Codec

DTMF_DIGITS = "0123456789*#ABCD"


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


# --- client -> gateway ----------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LoginForm:
    """The seed Phone UI's login form; the gateway fills what the client leaves out."""

    login: str
    auth_name: str = ""  # "": the login
    password: str = field(repr=False)
    domain: str
    outbound_proxy: str = ""  # "": the domain
    port: int = 5060


@dataclass(frozen=True, kw_only=True)
class Connect:
    """Log in: register `sip` at the SIP server. Answered by Connected or Failed."""

    KIND: ClassVar[str] = "connect"
    sip: LoginForm


@dataclass(frozen=True, kw_only=True)
class Ping:
    """Answered by Pong (the stack's liveness check)."""

    KIND: ClassVar[str] = "ping"


@dataclass(frozen=True, kw_only=True)
class PlaceCall:
    """Call `callee` with this WebRTC offer. Answered by Sdp, then Status messages."""

    KIND: ClassVar[str] = "call"
    call_id: str
    callee: str
    visible_name: str = ""
    sdp: str
    headers: dict[str, str] = field(default_factory=dict)  # only X-Calllab-* go on the INVITE
    #: the gateway's aiortc receiver: JitterBufferSpec text (fixed:MS, adaptive:MIN-MAX); "": its default
    jitter_buffer: str = ""


@dataclass(frozen=True, kw_only=True)
class Hangup:
    KIND: ClassVar[str] = "hangup"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class Hold:
    KIND: ClassVar[str] = "hold"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class Unhold:
    KIND: ClassVar[str] = "unhold"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class SendDtmf:
    KIND: ClassVar[str] = "dtmf"
    call_id: str
    digits: str
    method: str = "rfc4733"  # or "info"


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """Blind to `target` (a number), or attended: replacing the call `replaces`."""

    KIND: ClassVar[str] = "transfer"
    call_id: str
    target: str | None = None
    replaces: str | None = None


@dataclass(frozen=True, kw_only=True)
class Answer:
    """Answer an Incoming call: the gateway sends an Offer."""

    KIND: ClassVar[str] = "answer"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class AnswerSdp:
    """The client's SDP answer to the gateway's Offer."""

    KIND: ClassVar[str] = "answer_sdp"
    call_id: str
    sdp: str


@dataclass(frozen=True, kw_only=True)
class Reject:
    KIND: ClassVar[str] = "reject"
    call_id: str
    code: int = 603


ClientMessage = (
    Connect | Ping | PlaceCall | Hangup | Hold | Unhold | SendDtmf | Transfer | Answer | AnswerSdp | Reject
)
CLIENT_MESSAGES: Codec[ClientMessage] = Codec(
    "client",
    "type",
    *(Connect, Ping, PlaceCall, Hangup, Hold, Unhold, SendDtmf, Transfer, Answer, AnswerSdp, Reject),
)


# --- gateway -> client ----------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Connected:
    KIND: ClassVar[str] = "connected"
    login: str
    domain: str


@dataclass(frozen=True, kw_only=True)
class Failed:
    """The login failed (SIP code and reason)."""

    KIND: ClassVar[str] = "failed"
    code: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class Pong:
    KIND: ClassVar[str] = "pong"
    active_calls: int
    media_ports: int


@dataclass(frozen=True, kw_only=True)
class Sdp:
    """The gateway's SDP answer to a PlaceCall's offer."""

    KIND: ClassVar[str] = "sdp"
    call_id: str
    sdp: str


@dataclass(frozen=True, kw_only=True)
class Offer:
    """The gateway's WebRTC offer for an incoming call the client answers."""

    KIND: ClassVar[str] = "offer"
    call_id: str
    sdp: str


@dataclass(frozen=True, kw_only=True)
class Status:
    KIND: ClassVar[str] = "status"
    call_id: str
    status: CallStatus
    sip_code: int | None
    reason: str
    t: float  # time.time() at the gateway


@dataclass(frozen=True, kw_only=True)
class Incoming:
    """Someone calls the client's user: the call rings until Answer or Reject."""

    KIND: ClassVar[str] = "incoming"
    call_id: str
    caller: str
    callee: str


@dataclass(frozen=True, kw_only=True)
class DtmfEvent:
    """A digit from the far end."""

    KIND: ClassVar[str] = "event"
    call_id: str
    event: Literal["dtmf"] = "dtmf"
    digit: str
    method: str


@dataclass(frozen=True, kw_only=True)
class TransferEvent:
    """NOTIFY progress of a transfer the client asked for."""

    KIND: ClassVar[str] = "event"
    call_id: str
    event: Literal["transfer"] = "transfer"
    target: str
    code: int
    reason: str
    final: bool


@dataclass(frozen=True, kw_only=True)
class VideoEvent:
    """What became of the video a call offered: declined by the far end, or not relayed."""

    KIND: ClassVar[str] = "event"
    call_id: str
    event: Literal["video"] = "video"
    declined: bool
    reason: str
    t: float  # time.time() at the gateway


@dataclass(frozen=True, kw_only=True)
class Error:
    """A request refused, about one call or (without call_id) about the session."""

    KIND: ClassVar[str] = "error"
    call_id: str | None = None
    reason: str


GatewayMessage = (
    Connected
    | Failed
    | Pong
    | Sdp
    | Offer
    | Status
    | Incoming
    | DtmfEvent
    | TransferEvent
    | VideoEvent
    | Error
)
GATEWAY_MESSAGES: Codec[GatewayMessage] = Codec(
    "gateway",
    "type",
    Connected,
    Failed,
    Pong,
    Sdp,
    Offer,
    Status,
    Incoming,
    DtmfEvent,
    TransferEvent,
    VideoEvent,
    Error,
)
