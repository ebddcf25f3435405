"""The gateway without a lab: its call state machine, and a client session fed bad
messages (no SIP is sent: each is refused before it)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

from aiortc import RTCPeerConnection

from lab import webrtc
from lab.config import LabConfig
from lab.config import SipAccount as AccountForm
from lab.gateway.callstate import CallState, Report, offer_problem
from lab.gateway.server import ClientSession, Gateway
from lab.signaling import (
    CLIENT_MESSAGES,
    GATEWAY_MESSAGES,
    CallStatus,
    Connect,
    Error,
    Failed,
    GatewayMessage,
    LoginForm,
    Ping,
    PlaceCall,
    Pong,
)

S = CallStatus


def test_an_outgoing_call_rings_talks_holds_and_ends_by_the_far_end() -> None:
    call = CallState()
    assert call.sip_state("CALLING", 0, "") is None
    assert call.media_state("remote_hold") is None  # not established yet: nothing to tell
    assert call.sip_state("EARLY", 180, "Ringing") == Report(S.RING, 180, "Ringing")
    assert call.sip_state("CONFIRMED", 200, "OK") == Report(S.ESTABLISHED, 200, "OK")
    assert call.sip_state("CONFIRMED", 200, "OK") is None  # a re-INVITE's 200
    assert call.media_state("remote_hold") == Report(S.HOLD, None, "held by the far end")
    assert call.media_state("remote_hold") is None
    assert call.media_state("active") == Report(S.ESTABLISHED, None, "resumed")
    assert call.media_state("local_hold") == Report(S.HOLD, None, "on hold")
    finish = call.sip_state("DISCONNECTED", 200, "Normal call clearing", remote_reason="bye")
    assert finish == Report(S.FINISH, 200, "remote hangup (bye)")
    assert call.sip_state("DISCONNECTED", 200, "again") is None
    assert call.media_state("active") is None


def test_a_call_broken_by_lost_media_finishes_with_408() -> None:
    # The far end's BYE says why (Reason: SIP;cause=408;text="..."): the FINISH carries it.
    far = CallState(established=True)
    lost = far.sip_state("DISCONNECTED", 200, "OK", "PSTN gateway: no RTP from Mobile phone for 3 s", 408)
    assert lost == Report(S.FINISH, 408, "remote hangup (PSTN gateway: no RTP from Mobile phone for 3 s)")
    # The gateway's own watchdog ended it.
    own = CallState(established=True, end_reason="media timeout: no RTP from PSTN gateway", end_code=408)
    assert own.sip_state("DISCONNECTED", 200, "OK") == Report(
        S.FINISH, 408, "media timeout: no RTP from PSTN gateway"
    )
    normal = CallState(established=True)
    assert normal.sip_state("DISCONNECTED", 200, "OK", "bye", 200) == Report(
        S.FINISH, 200, "remote hangup (bye)"
    )


def test_how_a_call_ends_says_who_ended_it() -> None:
    busy = CallState()
    assert busy.sip_state("DISCONNECTED", 486, "Busy Here") == Report(S.BUSY, 486, "Busy Here")

    cancelled = CallState(hangup_requested=True)
    assert cancelled.sip_state("DISCONNECTED", 487, "Request Terminated") == Report(
        S.FAILED, 487, "cancelled (Request Terminated)"
    )

    rejected = CallState(incoming=True, hangup_requested=True, end_reason="rejected")
    assert rejected.sip_state("EARLY", 180, "Ringing") is None  # the client's own ring was "incoming"
    assert rejected.sip_state("DISCONNECTED", 603, "Decline") == Report(S.FAILED, 603, "rejected (Decline)")

    hung_up = CallState(established=True, hangup_requested=True)
    assert hung_up.sip_state("DISCONNECTED", 200, "OK") == Report(S.FINISH, 200, "hangup")

    transferred = CallState(established=True, end_reason="transferred to +79161234567")
    assert transferred.sip_state("DISCONNECTED", 200, "OK") == Report(
        S.FINISH, 200, "transferred to +79161234567"
    )

    failed = CallState()
    assert failed.fail(484, "bad number") == Report(S.FAILED, 484, "bad number")
    assert failed.sip_state("DISCONNECTED", 487, "late") is None


async def browser_offer() -> str:
    webrtc.configure("127.0.0.1")
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_offers_without_audio_are_refused() -> None:
    assert offer_problem("") == "the SDP does not start with v=0"
    assert offer_problem("v=0") == "the SDP has no audio m-line"
    assert offer_problem("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n") == "the SDP has no audio m-line"
    assert offer_problem("\x00\x01garbage") == "the SDP holds NUL characters"
    offer = await browser_offer()
    assert offer_problem(offer) is None
    no_fingerprint = re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", offer)
    assert offer_problem(no_fingerprint) == "the SDP has no a=fingerprint (WebRTC needs them)"


class FakeSocket:
    """A client's WebSocket: what it sends, and what the gateway answered."""

    remote_address = ("127.0.0.1", 50000)

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.answers: list[GatewayMessage] = []

    async def _messages(self) -> AsyncIterator[str]:
        for text in self.texts:
            yield text

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages()

    async def send(self, text: str) -> None:
        self.answers.append(GATEWAY_MESSAGES.decode(text))


def place(sdp: str, call_id: str) -> str:
    return CLIENT_MESSAGES.encode(PlaceCall(call_id=call_id, callee="+79161234567", sdp=sdp))


async def test_a_session_answers_every_bad_message_and_goes_on() -> None:
    offer = await browser_offer()
    no_fingerprint = re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", offer)
    texts = [
        "[" * 100_000,
        '{"type": "call", "call_id": "c0", "callee": "+79161234567", "sdp": null}',
        '{"type": "hangup", "call_id": "nope"}',
        place("", "c1"),
        place("v=0", "c2"),
        place("v=0\x00\x00", "c3"),
        place(offer.replace("IN IP4", "IN IP9"), "c4"),
        place(no_fingerprint, "c5"),
        CLIENT_MESSAGES.encode(
            Connect(sip=LoginForm(login="VKP009", password="pw", domain="127.0.0.3", port=-1))
        ),
        CLIENT_MESSAGES.encode(Connect(sip=LoginForm(login="VKP009", password="pw", domain="127.0.0.3>;lr"))),
        CLIENT_MESSAGES.encode(Ping()),
    ]
    endpoint = SimpleNamespace(active_calls=0, clock_rate=8000)
    gateway = cast(Gateway, SimpleNamespace(endpoint=endpoint, cfg=LabConfig()))
    ws = FakeSocket(texts)
    session = ClientSession(gateway, cast(Any, ws))
    session.form = AccountForm("VKP009", "VKP009", "pw", "127.0.0.3", "127.0.0.3")
    session.account = cast(Any, object())  # no SIP may be sent: no account is needed
    await session.run()
    await asyncio.sleep(0.1)  # the peer connections close in the background

    answers = ws.answers
    assert answers[:3] == [
        Error(reason="bad message: client message is nested too deeply"),
        Error(reason="bad message: call.sdp: expected a string, got null"),
        Error(reason="no call 'nope'"),
    ]
    refusals = [(a.call_id, a.status, a.sip_code, a.reason) for a in answers[3:8]]  # type: ignore[union-attr]
    assert refusals == [
        ("c1", S.FAILED, 488, "call.sdp: the SDP does not start with v=0"),
        ("c2", S.FAILED, 488, "call.sdp: the SDP has no audio m-line"),
        ("c3", S.FAILED, 488, "call.sdp: the SDP holds NUL characters"),
        ("c4", S.FAILED, 488, "call.sdp: WebRTC refused the offer: AssertionError"),
        ("c5", S.FAILED, 488, "call.sdp: the SDP has no a=fingerprint (WebRTC needs them)"),
    ]
    assert answers[8:10] == [
        Failed(code=400, reason="connect.sip.port: -1 is not a port (1-65535)"),
        Failed(code=400, reason="connect.sip.domain: '127.0.0.3>;lr' is not a SIP host"),
    ]
    assert isinstance(answers[10], Pong) and len(answers) == 11
    assert session.calls == {}
    assert session.tasks.running == set()
