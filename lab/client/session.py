"""The browser-style client: the seed's WebSDK (Session, createCall, call.call(),
call.hangup(), CALL_STATUS events) on aiortc.

Everything is a coroutine on the caller's asyncio loop, so it runs inside a Jupyter kernel
(which already runs a loop) without blocking it, as well as from scripts and the CLI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import websockets
from websockets.asyncio.client import ClientConnection

from lab import webrtc
from lab.client.media import CallMedia
from lab.config import CALL_ID_RE, SipAccount, new_call_id
from lab.numbers import normalize_number
from lab.signaling import (
    CLIENT_MESSAGES,
    DTMF_DIGITS,
    GATEWAY_MESSAGES,
    Answer,
    AnswerSdp,
    CallStatus,
    ClientMessage,
    Connect,
    Connected,
    DtmfEvent,
    Error,
    Failed,
    Hangup,
    Hold,
    Incoming,
    LoginForm,
    Offer,
    PlaceCall,
    Reject,
    Sdp,
    SendDtmf,
    Status,
    Transfer,
    TransferEvent,
    Unhold,
    VideoEvent,
)
from lab.sip.sdp import Codec, without_ice_password
from lab.tasks import Tasks
from lab.typedjson import MessageError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # s, WebSocket open plus SIP registration
OFFER_TIMEOUT = 10.0  # s, gateway's SDP answer


class LoginFailed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"login failed: {code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class StatusEvent:
    status: CallStatus
    t: float  # time.time()
    sip_code: int | None = None
    reason: str = ""


class Session:
    """A logged-in connection to the gateway (the seed's Session)."""

    def __init__(self, url: str, account: SipAccount, *, host: str = "127.0.0.1") -> None:
        self.url = url
        self.account = account
        self.host = host
        self.ws: ClientConnection | None = None
        self.calls: dict[str, Call] = {}
        self._reader: asyncio.Task[None] | None = None
        self._login: asyncio.Future[Connected | Failed] | None = None
        self._incoming_listeners: list[Callable[[Call], None]] = []
        self.tasks = Tasks(f"client {account.login}", log)
        #: what incoming calls play and where they record, unless the handler says otherwise
        self.incoming_prompt: Path | None = None
        self.incoming_record_dir: Callable[[str], Path] | None = None

    def on_incoming(self, callback: Callable[[Call], None]) -> Session:
        """Call `callback(call)` when someone calls this user; answer with call.answer()."""
        self._incoming_listeners.append(callback)
        return self

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Open the signaling connection and register the SIP account; raises LoginFailed."""
        webrtc.configure(self.host)
        try:
            self.ws = await asyncio.wait_for(websockets.connect(self.url, max_size=256 * 1024), timeout)
        except (OSError, TimeoutError) as exc:
            raise LoginFailed(503, f"gateway at {self.url} is not reachable ({exc or 'timeout'})") from None
        self._login = asyncio.get_running_loop().create_future()
        self._reader = self.tasks.start(self._read(), "reading the gateway's messages")
        await self.send(Connect(sip=LoginForm(**dataclasses.asdict(self.account))))
        try:
            reply = await asyncio.wait_for(self._login, timeout)
        except TimeoutError:
            await self.disconnect()
            raise LoginFailed(
                408, f"gateway at {self.url} did not confirm the login within {timeout:g} s"
            ) from None
        if isinstance(reply, Failed):
            await self.disconnect()
            raise LoginFailed(reply.code, reply.reason)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for text in self.ws:
                try:
                    msg = GATEWAY_MESSAGES.decode(text)
                except MessageError as exc:
                    log.warning("ignored a message from the gateway: %s", exc)
                    continue
                match msg:
                    case Connected() | Failed() if self._login and not self._login.done():
                        self._login.set_result(msg)
                    case Incoming():
                        self._incoming(msg)
                    case (
                        Status() | Sdp() | Offer() | DtmfEvent() | TransferEvent() | VideoEvent() | Error()
                    ) if msg.call_id:
                        call = self.calls.get(msg.call_id)
                        if call:
                            call._on_message(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            # A login the gateway will never answer: say why now, not at the timeout.
            if self._login is not None and not self._login.done():
                self._login.set_result(self._closed_during_login())
            for call in list(self.calls.values()):
                call._gateway_lost()

    def _closed_during_login(self) -> Failed:
        assert self.ws is not None
        code, why = self.ws.close_code, self.ws.close_reason or "no reason given"
        if code == 1009:  # a login form (a password of some 256 KiB) over the gateway's limit
            return Failed(code=413, reason=f"gateway at {self.url} refused the login form as too big ({why})")
        return Failed(
            code=503, reason=f"gateway at {self.url} closed the connection during the login ({code} {why})"
        )

    def _incoming(self, msg: Incoming) -> None:
        call_id = msg.call_id
        call = Call(
            self,
            callee=msg.caller or "unknown",
            visible_name=self.account.login,
            constraints={"audio": True, "video": False},
            audio=webrtc.BrowserAudio(),
            prompt=self.incoming_prompt,
            record_dir=self.incoming_record_dir(call_id) if self.incoming_record_dir else None,
            headers={},
            call_id=call_id,
            direction="in",
        )
        self.calls[call_id] = call
        call._set(CallStatus.RING, 180, f"incoming call from {call.callee}")
        for cb in self._incoming_listeners:
            cb(call)

    def create_call(
        self,
        callee: str,
        *,
        visible_name: str | None = None,
        constraints: dict[str, Any] | None = None,
        codec: str | None = None,
        audio: webrtc.BrowserAudio | None = None,
        prompt: Path | None = None,
        record_dir: Path | None = None,
        headers: dict[str, str] | None = None,
        call_id: str | None = None,
    ) -> Call:
        """The seed's session.createCall({callee, visibleName, constraints}).

        `codec` is short for `audio=BrowserAudio(codec)`; `audio` also sets the Opus bitrate,
        FEC and the jitter buffers. `constraints={"audio": True, "video": True}` offers video
        too (a test-pattern camera, VP8 and H.264): a "video" event says what the far end made
        of it. Raises InvalidNumber for anything that is not a phone number, before any SIP is
        sent.
        """
        call = Call(
            self,
            callee=normalize_number(callee),
            visible_name=visible_name or self.account.login,
            constraints=constraints or {"audio": True, "video": False},
            audio=webrtc.browser_audio(codec, audio),
            prompt=prompt,
            record_dir=record_dir,
            headers=headers or {},
            call_id=call_id or new_call_id(),
        )
        self.calls[call.id] = call
        return call

    createCall = create_call  # noqa: N815 - the seed's WebSDK spelling

    async def send(self, msg: ClientMessage) -> None:
        if self.ws is None:
            raise ConnectionError("session is not connected")
        await self.ws.send(CLIENT_MESSAGES.encode(msg))

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self.ws = None

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for call in list(self.calls.values()):
            if not call.status.final:
                await call.hangup()
        await self.disconnect()


@dataclass
class Call:
    session: Session
    callee: str
    visible_name: str
    constraints: dict[str, Any]
    audio: webrtc.BrowserAudio
    prompt: Path | None
    record_dir: Path | None
    headers: dict[str, str]
    call_id: str
    direction: str = "out"  # "in": someone called this user
    status: CallStatus = CallStatus.PENDING
    sip_code: int | None = None
    reason: str = ""
    history: list[StatusEvent] = field(default_factory=list)
    started_at: float | None = None
    _listeners: dict[CallStatus | None, list[Callable[[Call], None]]] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: what the gateway reported besides statuses: DTMF from the far end, refused requests
    events: list[dict[str, Any]] = field(default_factory=list)
    dtmf_received: str = ""
    #: what the user asked for, in order: (time.time(), "hangup()"), (t, "dtmf 12#"), ...
    actions: list[tuple[float, str]] = field(default_factory=list)
    _event_listeners: list[Callable[[Call, dict[str, Any]], None]] = field(default_factory=list)
    #: rewrites the WebRTC offer before it goes to the gateway (a network on the browser leg)
    offer_edit: Callable[[str], Awaitable[str]] | None = None
    #: the WebRTC offer and answer as they crossed the WebSocket, ICE password redacted:
    #: {"t": time.time(), "from": "browser" | "gateway", "kind": "offer" | "answer", "sdp"}
    sdp_exchange: list[dict[str, Any]] = field(default_factory=list)

    #: the WebRTC stack that places the call (lab.chromium's PageCall: "chromium")
    browser: ClassVar[str] = "aiortc"

    def __post_init__(self) -> None:
        if not CALL_ID_RE.fullmatch(self.call_id):
            raise ValueError(f"call id {self.call_id!r}: letters, digits, '-' and '_' only")
        self.media = CallMedia(
            self.audio,
            self.prompt,
            self.record_dir,
            self.session.tasks,
            f"call {self.call_id}",
            video=bool(self.constraints.get("video")),
        )
        self._sdp_offer: asyncio.Future[str] = asyncio.get_event_loop().create_future()

    @property
    def id(self) -> str:
        return self.call_id

    @property
    def negotiated(self) -> Codec | None:
        """The WebRTC leg's codec, once the SDP answer is in."""
        return self.media.negotiated

    @property
    def mic(self) -> webrtc.PromptTrack | None:
        return self.media.mic

    @property
    def sent_t0(self) -> float | None:
        """time.monotonic() of the first sample the microphone sent."""
        return self.mic.started_at if self.mic else None

    @property
    def heard(self) -> webrtc.Recording:
        return self.media.heard

    def on(self, status: CallStatus | None, callback: Callable[[Call], None]) -> Call:
        """Call `callback(call)` when the call reaches `status` (None: on every status)."""
        self._listeners.setdefault(status, []).append(callback)
        return self

    def _set(
        self, status: CallStatus, code: int | None = None, reason: str = "", t: float | None = None
    ) -> None:
        if self.status.final:
            return
        self.status, self.sip_code, self.reason = status, code, reason
        self.history.append(StatusEvent(status, t or time.time(), code, reason))
        self._changed.set()
        for cb in self._listeners.get(status, []) + self._listeners.get(None, []):
            cb(self)
        if status.final:
            self.session.tasks.start(self.media.close(), f"call {self.call_id}: saving its media")

    async def call(self) -> None:
        """Start the call: the seed's call.call()."""
        self.started_at = time.time()
        self._set(CallStatus.PENDING, t=self.started_at)
        offer = await self.media.offer()
        if self.offer_edit is not None:
            offer = await self.offer_edit(offer)
        self._sdp_answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._log_sdp("browser", "offer", offer)
        try:
            await self.session.send(
                PlaceCall(
                    call_id=self.call_id,
                    callee=self.callee,
                    visible_name=self.visible_name,
                    sdp=offer,
                    headers=self.headers,
                    jitter_buffer=str(self.audio.jitter_buffer),
                )
            )
            sdp = await asyncio.wait_for(self._sdp_answer, OFFER_TIMEOUT)
        except TimeoutError:
            self._set(
                CallStatus.FAILED, None, f"gateway did not answer the WebRTC offer within {OFFER_TIMEOUT:g} s"
            )
            return
        except (ConnectionError, websockets.ConnectionClosed) as exc:
            self._set(CallStatus.FAILED, None, f"gateway connection lost: {exc}")
            return
        except asyncio.CancelledError:
            if self.status.final:  # failed while waiting for the answer
                return
            raise
        if not self.status.final:  # else the peer connection is being closed already
            await self.media.take_answer(sdp)

    def _log_sdp(self, sender: str, kind: str, sdp: str) -> None:
        self.sdp_exchange.append(
            {"t": time.time(), "from": sender, "kind": kind, "sdp": without_ice_password(sdp)}
        )

    def _on_message(self, msg: Status | Sdp | Offer | DtmfEvent | TransferEvent | VideoEvent | Error) -> None:
        match msg:
            case Offer(sdp=sdp):
                if not self._sdp_offer.done():
                    self._log_sdp("gateway", "offer", sdp)
                    self._sdp_offer.set_result(sdp)
            case Sdp(sdp=sdp):
                if not self._sdp_answer.done():
                    self._log_sdp("gateway", "answer", sdp)
                    self._sdp_answer.set_result(sdp)
            case Status(status=status):
                self._set(status, msg.sip_code, msg.reason, msg.t)
                if status.final and hasattr(self, "_sdp_answer") and not self._sdp_answer.done():
                    self._sdp_answer.cancel()
            case DtmfEvent() | TransferEvent() | VideoEvent() | Error():
                event = {"event": "error"} | GATEWAY_MESSAGES.fields(msg)
                del event["call_id"]
                self.events.append(event)
                if isinstance(msg, DtmfEvent):
                    self.dtmf_received += msg.digit
                for cb in self._event_listeners:
                    cb(self, event)
                self._changed.set()

    async def answer(self) -> None:
        """Answer an incoming call: the gateway offers WebRTC audio, the call is ESTABLISHED
        once both legs are up."""
        if self.direction != "in" or self.status != CallStatus.RING:
            raise RuntimeError(f"call {self.call_id}: only a ringing incoming call can be answered")
        self.started_at = time.time()
        self.actions.append((self.started_at, "answer()"))
        await self.session.send(Answer(call_id=self.call_id))
        try:
            offer = await asyncio.wait_for(self._sdp_offer, OFFER_TIMEOUT)
        except TimeoutError:
            self._set(CallStatus.FAILED, None, f"gateway sent no WebRTC offer within {OFFER_TIMEOUT:g} s")
            return
        answer = await self.media.answer(offer)
        self._log_sdp("browser", "answer", answer)
        await self.session.send(AnswerSdp(call_id=self.call_id, sdp=answer))

    async def reject(self, code: int = 603) -> None:
        """Refuse an incoming call (603 Decline, or 486 Busy Here)."""
        self.actions.append((time.time(), f"reject({code})"))
        await self.session.send(Reject(call_id=self.call_id, code=code))

    def _gateway_lost(self) -> None:
        self._set(CallStatus.FAILED, None, "connection to the gateway was lost")

    def on_event(self, callback: Callable[[Call, dict[str, Any]], None]) -> Call:
        """Call `callback(call, event)` for DTMF from the far end and refused requests."""
        self._event_listeners.append(callback)
        return self

    async def send_dtmf(self, digits: str, method: str = "rfc4733") -> None:
        """Digits 0-9 * # A-D to the far end: RFC 4733 events in the RTP, or SIP INFO."""
        if method not in ("rfc4733", "info"):
            raise ValueError(f"DTMF method {method!r}: rfc4733 or info")
        if not digits or any(d not in DTMF_DIGITS for d in digits):
            raise ValueError(f"DTMF digits must be among {DTMF_DIGITS}, not {digits!r}")
        self.actions.append((time.time(), f"DTMF {digits} ({method})"))
        await self.session.send(SendDtmf(call_id=self.call_id, digits=digits, method=method))

    async def transfer(self, target: str | Call) -> None:
        """Transfer the far end; progress arrives as "transfer" events (the NOTIFY codes).

        Blind, to a number: a REFER. Attended, to another established call of this session
        (the consultation call): a REFER with Replaces, so the two far ends talk to each
        other. On success the call (and the consultation call) end with FINISH
        "transferred ..."; on failure they stay up."""
        if isinstance(target, Call):
            if target.session is not self.session or target is self:
                raise ValueError(
                    "attended transfer: the consultation call must be another call of this session"
                )
            self.actions.append((time.time(), f"transfer(call to {target.callee})"))
            await self.session.send(Transfer(call_id=self.call_id, replaces=target.call_id))
            return
        number = normalize_number(target)
        self.actions.append((time.time(), f"transfer({number})"))
        await self.session.send(Transfer(call_id=self.call_id, target=number))

    async def hold(self) -> None:
        """re-INVITE with a=sendonly through the chain; the status becomes HOLD."""
        self.actions.append((time.time(), "hold()"))
        await self.session.send(Hold(call_id=self.call_id))

    async def unhold(self) -> None:
        """re-INVITE with a=sendrecv; the status goes back to ESTABLISHED."""
        self.actions.append((time.time(), "unhold()"))
        await self.session.send(Unhold(call_id=self.call_id))

    async def hangup(self) -> None:
        """The seed's call.hangup(): CANCEL while ringing, BYE once established."""
        if self.status.final:
            return
        self.actions.append((time.time(), "hangup()"))
        try:
            await self.session.send(Hangup(call_id=self.call_id))
        except (ConnectionError, websockets.ConnectionClosed):
            self._gateway_lost()

    async def wait_for(self, *statuses: CallStatus, timeout: float) -> CallStatus:
        """Wait until the call reaches one of `statuses` or ends; TimeoutError names both."""
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while self.status not in wanted and not self.status.final:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = "/".join(s.value for s in statuses) or "the end of the call"
                raise TimeoutError(
                    f"call {self.call_id} to {self.callee}: no {names} within {timeout:g} s "
                    f"(status is {self.status.value})"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.status

    async def ended(self, timeout: float) -> CallStatus:
        return await self.wait_for(CallStatus.FINISH, CallStatus.FAILED, CallStatus.BUSY, timeout=timeout)

    async def media_closed(self, timeout: float = 5.0) -> None:
        """Wait until the recordings of this call are written."""
        try:
            await asyncio.wait_for(self.media.closed.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"call {self.call_id}: the client's media did not close within {timeout:g} s"
            ) from None
