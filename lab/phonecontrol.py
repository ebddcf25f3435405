"""The lab phone's control socket: its screen and buttons, over a WebSocket on the phone's
address. The phone (lab/sip/phone.py) serves it; scenarios and the notebook widget use
PhoneControl.

Commands ({"cmd": ...}) go to the phone; each gets one reply event. Events
({"event": ...}) come back: the reply, and what happens to the phone's calls, sent to every
watcher. On connecting, a watcher gets Hello.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

from lab.tasks import Tasks
from lab.typedjson import Codec, MessageError, wire

CONTROL_TIMEOUT = 5.0  # s, for one command and its reply


# --- commands: watcher -> phone -------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AnswerCall:
    """Answer the ringing call."""

    KIND: ClassVar[str] = "answer"


@dataclass(frozen=True, kw_only=True)
class RejectCall:
    """Refuse the ringing call with 603 Decline."""

    KIND: ClassVar[str] = "reject"


@dataclass(frozen=True, kw_only=True)
class HangupCall:
    KIND: ClassVar[str] = "hangup"


@dataclass(frozen=True, kw_only=True)
class SetPolicy:
    """How to treat calls that bring no policy of their own (after:S, busy, manual, ...)."""

    KIND: ClassVar[str] = "policy"
    value: str


@dataclass(frozen=True, kw_only=True)
class Dial:
    """Call the SIP user `to` through the mobile network, as `caller` (the phone's number
    if None); the call's files go to captures/<call_id> (a new dial-in id if None)."""

    KIND: ClassVar[str] = "dial"
    to: str
    call_id: str | None = None
    caller: str | None = field(default=None, metadata=wire("from"))


@dataclass(frozen=True, kw_only=True)
class AwaitReport:
    """Reply Filed once the phone has filed its report of call `call_id` (phone.json, written
    when the recording is final), at once if it has; Refused after `timeout` s."""

    KIND: ClassVar[str] = "report"
    call_id: str
    timeout: float = 5.0


Command = AnswerCall | RejectCall | HangupCall | SetPolicy | Dial | AwaitReport
COMMANDS: Codec[Command] = Codec(
    "phone", "cmd", AnswerCall, RejectCall, HangupCall, SetPolicy, Dial, AwaitReport
)


# --- events: phone -> watchers --------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Hello:
    KIND: ClassVar[str] = "hello"
    policy: str
    calls: int


@dataclass(frozen=True, kw_only=True)
class Ringing:
    """A call comes in (caller id, the number it is for, the policy it is treated by)."""

    KIND: ClassVar[str] = "incoming"
    number: str
    caller: str
    call_id: str | None
    policy: str


@dataclass(frozen=True, kw_only=True)
class Ringback:
    """The call the phone dialled rings at the far end."""

    KIND: ClassVar[str] = "ringback"
    to: str


@dataclass(frozen=True, kw_only=True)
class Answered:
    KIND: ClassVar[str] = "answered"
    number: str
    caller: str


@dataclass(frozen=True, kw_only=True)
class DigitReceived:
    KIND: ClassVar[str] = "dtmf"
    digit: str
    method: str
    digits: str  # all digits of this call so far


@dataclass(frozen=True, kw_only=True)
class Held:
    KIND: ClassVar[str] = "held"


@dataclass(frozen=True, kw_only=True)
class Resumed:
    KIND: ClassVar[str] = "resumed"


@dataclass(frozen=True, kw_only=True)
class Ended:
    KIND: ClassVar[str] = "ended"
    code: int
    reason: str
    number: str


@dataclass(frozen=True, kw_only=True)
class PolicySet:
    """Reply to SetPolicy: the policy as the phone understood it."""

    KIND: ClassVar[str] = "policy"
    policy: str


@dataclass(frozen=True, kw_only=True)
class Dialling:
    """Reply to Dial."""

    KIND: ClassVar[str] = "dialling"
    to: str
    call_id: str


@dataclass(frozen=True, kw_only=True)
class Done:
    """Reply to AnswerCall, RejectCall, HangupCall."""

    KIND: ClassVar[str] = "done"
    cmd: str


@dataclass(frozen=True, kw_only=True)
class Filed:
    """Reply to AwaitReport: where the phone's report of the call is."""

    KIND: ClassVar[str] = "filed"
    call_id: str
    path: str


@dataclass(frozen=True, kw_only=True)
class Refused:
    """Reply to a command the phone cannot carry out (or cannot read)."""

    KIND: ClassVar[str] = "error"
    reason: str


Reply = PolicySet | Dialling | Done | Filed | Refused  # the answer to a command
Event = Hello | Ringing | Ringback | Answered | DigitReceived | Held | Resumed | Ended | Reply
EVENTS: Codec[Event] = Codec(
    "phone",
    "event",
    *(Hello, Ringing, Ringback, Answered, DigitReceived, Held, Resumed, Ended),
    *(PolicySet, Dialling, Done, Filed, Refused),
)


class PhoneControl:
    """A watcher on one phone's control socket: sends commands, reads events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None

    async def connect(self, timeout: float = CONTROL_TIMEOUT) -> Hello:
        """Open the socket; returns the phone's Hello. ConnectionError if it does not answer."""
        try:
            async with asyncio.timeout(timeout):
                self.ws = await websockets.connect(self.url)
                hello = EVENTS.decode(await self.ws.recv())
        except (OSError, TimeoutError, websockets.ConnectionClosed, MessageError) as exc:
            raise ConnectionError(f"mobile phone at {self.url} does not answer: {exc}") from None
        if not isinstance(hello, Hello):
            raise ConnectionError(f"mobile phone at {self.url} said {hello.KIND!r} instead of hello")
        return hello

    async def send(self, command: Command) -> None:
        if self.ws is None:
            await self.connect()
        assert self.ws is not None
        await self.ws.send(COMMANDS.encode(command))

    async def events(self) -> AsyncIterator[Event]:
        """Every event until the phone closes the socket (unreadable ones are skipped)."""
        assert self.ws is not None
        try:
            async for text in self.ws:
                try:
                    yield EVENTS.decode(text)
                except MessageError:
                    continue
        except websockets.ConnectionClosed:
            return

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


async def command(url: str, cmd: Command, timeout: float = CONTROL_TIMEOUT) -> Reply:
    """One command on a connection of its own, and the phone's reply to it (call events
    broadcast meanwhile are passed over)."""
    control = PhoneControl(url)
    try:
        await control.connect(timeout)
        async with asyncio.timeout(timeout):
            await control.send(cmd)
            async for event in control.events():
                if isinstance(event, PolicySet | Dialling | Done | Filed | Refused):
                    return event
        raise ConnectionError(f"mobile phone at {url} closed the socket without a reply")
    except (OSError, TimeoutError, websockets.ConnectionClosed) as exc:
        raise ConnectionError(f"mobile phone at {url} does not answer: {exc}") from None
    finally:
        await control.close()


class ControlServer:
    """The phone's end: serves the socket, answers each command with `handle(command)`
    and sends events to every watcher."""

    def __init__(
        self,
        host: str,
        port: int,
        hello: Callable[[], Hello],
        handle: Callable[[Command], Reply | Awaitable[Reply]],
        tasks: Tasks,
    ) -> None:
        self.host, self.port = host, port
        self.hello = hello
        self.handle = handle
        self.tasks = tasks
        self.watchers: set[ServerConnection] = set()

    async def start(self) -> None:
        self.server = await websockets.serve(self._serve, self.host, self.port)

    def close(self) -> None:
        self.server.close()

    def broadcast(self, event: Event) -> None:
        text = EVENTS.encode(event)
        for ws in list(self.watchers):
            self.tasks.start(_send_quietly(ws, text), f"telling a watcher {event.KIND}")

    async def _serve(self, ws: ServerConnection) -> None:
        self.watchers.add(ws)
        try:
            await ws.send(EVENTS.encode(self.hello()))
            async for text in ws:
                try:
                    handled = self.handle(COMMANDS.decode(text))
                    reply = await handled if inspect.isawaitable(handled) else handled
                except ValueError as exc:  # MessageError, or a value the phone refuses
                    reply = Refused(reason=str(exc))
                await ws.send(EVENTS.encode(reply))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.watchers.discard(ws)


async def _send_quietly(ws: ServerConnection, text: str) -> None:
    try:
        await ws.send(text)
    except websockets.ConnectionClosed:
        pass


def as_dict(event: Event) -> dict[str, object]:
    """The event as it goes on the wire: {"event": kind, ...fields}."""
    return {"event": event.KIND, **EVENTS.fields(event)}
