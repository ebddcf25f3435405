"""The gateway process: WebSocket signaling for browser-style clients, one SIP account per
logged-in client, one SIP call plus one WebRTC peer connection per call."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import websockets
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.server import ServerConnection

from lab import webrtc
from lab.config import CALL_HEADER, CALL_ID_RE, LabConfig, Party, new_call_id
from lab.config import SipAccount as AccountForm
from lab.gateway.bridge import MediaBridge
from lab.numbers import InvalidNumber, normalize_number
from lab.signaling import DTMF_DIGITS, CallStatus, decode, encode
from lab.sip.endpoint import (
    MAX_CALLS,
    CallSnapshot,
    FramePort,
    MediaWatchdog,
    SipAccount,
    SipCall,
    SipEndpoint,
)
from lab.sip.message import user_of
from lab.sip.party import run

log = logging.getLogger("gateway")

REGISTER_TIMEOUT = 6.0  # s; pjsip's own would be 32 s
INFO_DTMF_SPACING = 0.08  # s between SIP INFO digits
_BUSY_CODES = {486, 600}
_FORWARDED_HEADER_PREFIX = "X-Calllab-"


class Gateway:
    def __init__(self, cfg: LabConfig, endpoint: SipEndpoint, party: Party) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self.sessions: set[ClientSession] = set()
        webrtc.configure(cfg.gateway.host)

    async def start(self) -> None:
        self.server = await websockets.serve(
            self.handle, self.cfg.gateway.host, self.cfg.ws_port, max_size=256 * 1024
        )

    async def stop(self) -> None:
        self.server.close()
        for session in list(self.sessions):
            await session.close()
        await self.server.wait_closed()

    async def handle(self, ws: ServerConnection) -> None:
        session = ClientSession(self, ws)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            await session.close()


class ClientSession:
    """One WebSocket connection: the seed's Session, logged in with one SIP account."""

    def __init__(self, gateway: Gateway, ws: ServerConnection) -> None:
        self.gateway = gateway
        self.endpoint = gateway.endpoint
        self.ws = ws
        self.form: AccountForm | None = None
        self.account: SipAccount | None = None
        self.registered: asyncio.Future[tuple[int, str]] | None = None
        self.calls: dict[str, GatewayCall] = {}

    async def send(self, kind: str, **fields: Any) -> None:
        try:
            await self.ws.send(encode(kind, **fields))
        except websockets.ConnectionClosed:
            pass

    async def run(self) -> None:
        async for text in self.ws:
            try:
                msg = decode(text)
                await self.dispatch(msg)
            except (ValueError, KeyError, TypeError) as exc:
                await self.send("error", reason=f"bad message: {exc}")

    async def dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "ping":
            await self.send("pong", active_calls=self.endpoint.active_calls, media_ports=FramePort.made())
        elif kind == "connect":
            await self.login(msg["sip"])
        elif kind == "call":
            await self.start_call(msg)
        elif kind in ("hangup", "dtmf", "hold", "unhold", "transfer", "answer", "answer_sdp", "reject"):
            call = self.calls.get(str(msg["call_id"]))
            if call is None:
                await self.send("error", reason=f"no call {msg['call_id']!r}")
            elif kind == "hangup":
                call.hangup()
            elif kind == "answer":
                await call.accept()
            elif kind == "answer_sdp":
                await call.complete(str(msg["sdp"]))
            elif kind == "reject":
                call.reject(int(msg.get("code") or 603))
            else:
                await call.control(kind, msg)
        else:
            await self.send("error", reason=f"unknown message type {kind!r}")

    async def login(self, sip: dict[str, Any]) -> None:
        form = AccountForm(
            login=str(sip["login"]),
            auth_name=str(sip.get("auth_name") or sip["login"]),
            password=str(sip["password"]),
            domain=str(sip["domain"]),
            outbound_proxy=str(sip.get("outbound_proxy") or sip["domain"]),
            port=int(sip.get("port") or 5060),
        )
        if self.account is not None:
            self.endpoint.remove_account(self.account)
        self.form = form
        self.registered = asyncio.get_running_loop().create_future()
        server = f"{form.outbound_proxy}:{form.port}"
        log.info("login %s@%s via %s", form.login, form.domain, server)
        try:
            self.account = self.endpoint.account(
                self,
                user=form.login,
                domain=form.domain,
                registrar=form.domain if form.outbound_proxy else f"{form.domain}:{form.port}",
                proxy=server,
                auth_name=form.auth_name,
                password=form.password,
            )
        except Exception as exc:
            await self.send("failed", code=500, reason=f"gateway cannot create the SIP account: {exc}")
            return
        try:
            code, reason = await asyncio.wait_for(self.registered, REGISTER_TIMEOUT)
        except TimeoutError:
            code, reason = (
                408,
                f"SIP server {server} did not answer the REGISTER within {REGISTER_TIMEOUT:g} s",
            )
        if 200 <= code < 300:
            await self.send("connected", login=form.login, domain=form.domain)
            return
        if code in (401, 403, 407):
            reason = f"authentication failed ({code} {reason})"
        self.endpoint.remove_account(self.account)
        self.account = None
        log.info("login %s failed: %s %s", form.login, code, reason)
        await self.send("failed", code=code, reason=reason)

    # AccountListener
    def on_registration(self, code: int, reason: str) -> None:
        if self.registered is not None and not self.registered.done():
            self.registered.set_result((code, reason))

    def admit_call(self) -> bool:
        return True

    def on_incoming_call(self, call: SipCall, user: str, headers: dict[str, str]) -> None:
        """A call for this client's user: it rings at the client until it answers or rejects."""
        tag = headers.get(CALL_HEADER.lower(), "")
        call_id = tag if CALL_ID_RE.fullmatch(tag) and tag not in self.calls else new_call_id("in-")
        incoming = GatewayCall(self, call_id)
        incoming.incoming = True
        incoming.sip = call
        incoming.far_number = user_of(headers.get("p-asserted-identity") or headers.get("from", ""))
        call.listener = incoming
        self.calls[call_id] = incoming
        call.answer_with(180, "Ringing")
        asyncio.ensure_future(self.send("incoming", call_id=call_id, caller=incoming.far_number, callee=user))

    async def start_call(self, msg: dict[str, Any]) -> None:
        call_id = str(msg["call_id"])
        if not CALL_ID_RE.fullmatch(call_id) or call_id in self.calls:
            await self.send("error", reason=f"bad or duplicate call id {call_id!r}")
            return
        call = GatewayCall(self, call_id)
        self.calls[call_id] = call
        await call.start(msg)

    async def close(self) -> None:
        for call in list(self.calls.values()):
            call.hangup()
            call.close_media()
        self.calls.clear()
        if self.account is not None:
            self.endpoint.remove_account(self.account)
            self.account = None


class GatewayCall:
    """One browser call: WebRTC leg to the client, SIP leg to the SIP server."""

    def __init__(self, session: ClientSession, call_id: str) -> None:
        self.session = session
        self.call_id = call_id
        self.sip: SipCall | None = None
        self.pc = webrtc.peer_connection()
        self.bridge = MediaBridge()
        self.established = False
        self.on_hold = False
        self.hangup_requested = False
        self.end_reason = ""  # set when the gateway itself ends the call
        self.incoming = False  # someone called the client (its "incoming" message was the ring)
        self.far_number = ""  # the callee, or the caller of an incoming call
        self.transfer_target = ""
        self.consultation: GatewayCall | None = None  # the call an attended transfer replaces
        self.watchdog: MediaWatchdog | None = None
        self.ended = False

    async def status(self, status: CallStatus, code: int | None = None, reason: str = "") -> None:
        await self.session.send(
            "status", call_id=self.call_id, status=status.value, sip_code=code, reason=reason, t=time.time()
        )

    async def fail(self, code: int, reason: str) -> None:
        self.ended = True
        await self.status(CallStatus.FAILED, code, reason)
        self.close_media()
        self.session.calls.pop(self.call_id, None)

    async def start(self, msg: dict[str, Any]) -> None:
        form, account = self.session.form, self.session.account
        if form is None or account is None:
            await self.fail(403, "not logged in: connect with a SIP account first")
            return
        try:
            callee = normalize_number(str(msg["callee"]))
        except InvalidNumber as exc:
            await self.fail(484, str(exc))
            return
        self.far_number = callee

        self._take_browser_audio()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=str(msg["sdp"]), type="offer"))
        headers = {
            str(k): str(v)
            for k, v in (msg.get("headers") or {}).items()
            if str(k).startswith(_FORWARDED_HEADER_PREFIX) and "\r" not in str(v) and "\n" not in str(v)
        }
        if self.session.endpoint.active_calls >= MAX_CALLS:  # checked and taken with no await between
            await self.fail(
                503, f"gateway busy: it carries {MAX_CALLS} calls at once (pjsua2's limit per process)"
            )
            return
        # INVITE first, so SIP call setup overlaps ICE and DTLS.
        self.sip = SipCall(self.session.endpoint, account)
        self.sip.listener = self
        try:
            self.sip.dial(f"sip:{callee}@{form.domain}", headers)
        except RuntimeError as exc:
            await self.fail(500, f"gateway could not send the INVITE: {exc}")
            return
        await self.status(CallStatus.TRYING)
        self.pc.addTrack(self.bridge.to_browser)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        await self.session.send("sdp", call_id=self.call_id, sdp=self.pc.localDescription.sdp)

    def _take_browser_audio(self) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self.bridge.browser_track(track)

    async def accept(self) -> None:
        """The client answers an incoming call: offer it WebRTC audio first."""
        self._take_browser_audio()
        self.pc.addTrack(self.bridge.to_browser)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.session.send("offer", call_id=self.call_id, sdp=self.pc.localDescription.sdp)

    async def complete(self, sdp: str) -> None:
        """The client's SDP answer: the WebRTC leg is set, so answer the SIP call (200)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        if self.sip is not None:
            self.sip.answer_with(200, "OK")

    def reject(self, code: int) -> None:
        self.hangup_requested = True
        self.end_reason = "rejected"
        if self.sip is not None:
            self.sip.answer_with(code if 400 <= code < 700 else 603, "Decline" if code == 603 else "")

    def hangup(self) -> None:
        self.hangup_requested = True
        if self.sip is not None:
            self.sip.hangup_with()

    async def control(self, kind: str, msg: dict[str, Any]) -> None:
        """DTMF, hold and unhold from the client, carried out on the SIP leg."""
        if self.sip is None or not self.established:
            await self.session.send(
                "error", call_id=self.call_id, reason=f"{kind}: the call is not established"
            )
            return
        try:
            if kind == "dtmf":
                digits = str(msg.get("digits", ""))
                if not digits or any(d not in DTMF_DIGITS for d in digits):
                    raise RuntimeError(f"DTMF digits must be among {DTMF_DIGITS}, not {digits!r}")
                if msg.get("method") == "info":
                    asyncio.ensure_future(self._send_info_digits(digits))
                else:
                    self.sip.send_dtmf(digits, "rfc4733")
            elif kind == "transfer" and msg.get("replaces"):
                self._transfer_to_call(str(msg["replaces"]))
            elif kind == "transfer":
                target = normalize_number(str(msg.get("target", "")))
                assert self.session.form is not None
                self.transfer_target = target
                self.sip.transfer(f"sip:{target}@{self.session.form.domain}")
            elif kind == "hold":
                self.sip.hold()
            else:
                self.sip.unhold()
        except (RuntimeError, InvalidNumber) as exc:
            await self.session.send("error", call_id=self.call_id, reason=f"{kind}: {exc}")

    def _transfer_to_call(self, other_id: str) -> None:
        """Attended transfer: REFER our far end to the consultation call's, with Replaces."""
        assert self.sip is not None
        other = self.session.calls.get(other_id)
        if other is None or other is self or other.sip is None or not other.established:
            raise RuntimeError(f"no established call {other_id!r} on this session to transfer to")
        self.transfer_target = other.far_number
        self.sip.transfer_replacing(other.sip)
        self.consultation = other
        # The far end of the consultation call gets an INVITE with Replaces and hangs up
        # that call (BYE), usually before our final NOTIFY: it must not read "remote hangup".
        other.end_reason = f"transferred: joined to {self.far_number}"

    def on_transfer_status(self, call: SipCall, code: int, reason: str, final: bool) -> None:
        """NOTIFY from the far end about our REFER: success ends our leg, failure keeps it."""
        asyncio.ensure_future(
            self.session.send(
                "event",
                call_id=self.call_id,
                event="transfer",
                target=self.transfer_target,
                code=code,
                reason=reason,
                final=final,
            )
        )
        if final and 200 <= code < 300:
            self.end_reason = f"transferred to {self.transfer_target}"
            call.hangup_with()
        elif final and self.consultation is not None:
            self.consultation.end_reason = ""  # the transfer failed: it goes on as it was
        if final:
            self.consultation = None

    async def _send_info_digits(self, digits: str) -> None:
        """One INFO per digit, spaced: sent all at once they overtake each other in the SIP
        server's parallel workers and the far end refuses the ones whose CSeq went backwards."""
        for digit in digits:
            if self.sip is None or self.ended:
                return
            try:
                self.sip.send_dtmf(digit, "info")
            except RuntimeError as exc:
                await self.session.send("error", call_id=self.call_id, reason=f"dtmf: {exc}")
                return
            await asyncio.sleep(INFO_DTMF_SPACING)

    def on_media_state(self, call: SipCall, state: str) -> None:
        if self.ended or not self.established:
            return
        if self.watchdog is not None:
            self.watchdog.paused = state != "active"
        if state in ("local_hold", "remote_hold") and not self.on_hold:
            self.on_hold = True
            reason = "on hold" if state == "local_hold" else "held by the far end"
            asyncio.ensure_future(self.status(CallStatus.HOLD, None, reason))
        elif state == "active" and self.on_hold:
            self.on_hold = False
            asyncio.ensure_future(self.status(CallStatus.ESTABLISHED, None, "resumed"))

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        asyncio.ensure_future(
            self.session.send("event", call_id=self.call_id, event="dtmf", digit=digit, method=method)
        )

    # CallListener
    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None:
        asyncio.ensure_future(self._on_state(call, snap))

    async def _on_state(self, sip: SipCall, snap: CallSnapshot) -> None:
        if self.ended:
            return
        if snap.state == "EARLY" and snap.status_code in (180, 183) and not self.incoming:
            await self.status(CallStatus.RING, snap.status_code, snap.reason)
        elif snap.state == "CONFIRMED" and not self.established:
            self.established = True
            await self.status(CallStatus.ESTABLISHED, 200, snap.reason)
        elif snap.state == "DISCONNECTED":
            self.ended = True
            if self.watchdog is not None:
                self.watchdog.stop()
            if self.established:
                remote = (
                    f"remote hangup ({sip.remote_reason})" if sip and sip.remote_reason else "remote hangup"
                )
                who = self.end_reason or ("hangup" if self.hangup_requested else remote)
                await self.status(CallStatus.FINISH, snap.status_code, who)
            elif snap.status_code in _BUSY_CODES:
                await self.status(CallStatus.BUSY, snap.status_code, snap.reason)
            elif self.hangup_requested:
                how = self.end_reason or "cancelled"
                await self.status(CallStatus.FAILED, snap.status_code, f"{how} ({snap.reason})")
            else:
                await self.status(CallStatus.FAILED, snap.status_code, snap.reason)
            self.close_media()
            self.session.calls.pop(self.call_id, None)

    def on_media_active(self, call: SipCall) -> None:
        self.bridge.attach(call)
        if self.watchdog is None:
            self.watchdog = MediaWatchdog(call, self._media_timeout, self.session.gateway.cfg.media_timeout)

    def _media_timeout(self, call: SipCall) -> None:
        self.end_reason = (
            f"media timeout: no RTP from the SIP side for {self.session.gateway.cfg.media_timeout:g} s"
        )
        log.warning("call %s: %s", self.call_id, self.end_reason)
        call.hangup_with()

    def close_media(self) -> None:
        self.bridge.close()
        asyncio.ensure_future(self.pc.close())
        self.sip = None


def main() -> None:
    run("Gateway", lambda cfg: ["PCMU", "PCMA"], Gateway)


if __name__ == "__main__":
    main()
