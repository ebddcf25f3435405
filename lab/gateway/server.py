"""The gateway process: WebSocket signaling for browser-style clients, one SIP account per
logged-in client, one SIP call plus one WebRTC peer connection per call."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import websockets
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.server import ServerConnection

from lab import webrtc
from lab.config import (
    CALL_HEADER,
    CALL_ID_RE,
    CODECS_HEADER,
    IMPAIR_HEADER,
    LabConfig,
    Party,
    SipAccount,
    new_call_id,
)
from lab.gateway import page, passthrough, video
from lab.gateway.bridge import MediaBridge
from lab.gateway.callstate import CallState, Report, offer_problem
from lab.gateway.opusrelay import OpusRelay
from lab.gateway.passthrough import PASSTHROUGH_CODECS, AudioPassthrough
from lab.gateway.videorelay import VideoRelay
from lab.jitterspec import DEFAULT_SPEC, JitterBufferSpec
from lab.network import detour
from lab.network.impairment import ImpairmentError
from lab.network.legs import LegImpairment, from_header, on_leg
from lab.numbers import InvalidNumber, normalize_number
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
    GatewayMessage,
    Hangup,
    Hold,
    Incoming,
    LoginForm,
    Offer,
    Ping,
    PlaceCall,
    Pong,
    Reject,
    Sdp,
    SendDtmf,
    Status,
    Transfer,
    TransferEvent,
    Unhold,
    VideoEvent,
)
from lab.sip import codecs
from lab.sip.endpoint import (
    MAX_CALLS,
    MEDIA_TIMEOUT_CAUSE,
    CallSnapshot,
    FramePort,
    MediaWatchdog,
    PjsuaAccount,
    SipCall,
    SipEndpoint,
)
from lab.sip.message import user_of
from lab.sip.party import run
from lab.sip.sdp import compose, parse_sdp
from lab.tasks import Tasks
from lab.typedjson import MessageError

log = logging.getLogger("gateway")

REGISTER_TIMEOUT = 6.0  # s; pjsip's own would be 32 s
INFO_DTMF_SPACING = 0.08  # s between SIP INFO digits
_FORWARDED_HEADER_PREFIX = "X-Calllab-"


class Gateway:
    """One worker of the gateway's pool (LabConfig.gateway_pool): its clients come through the
    gateway's WebSocket endpoint (lab.gateway.front) to this worker's Unix socket."""

    def __init__(self, cfg: LabConfig, endpoint: SipEndpoint, party: Party) -> None:
        self.cfg = cfg
        self.party = party
        self.endpoint = endpoint
        self.sessions: set[ClientSession] = set()
        webrtc.configure(cfg.gateway.host)

    async def start(self) -> None:
        path = self.cfg.worker_socket(self.party)
        path.unlink(missing_ok=True)  # left by a worker that died
        self.server = await websockets.unix_serve(
            self.handle, str(path), max_size=256 * 1024, process_request=page.responder(self.cfg)
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
        self.form: SipAccount | None = None
        self.account: PjsuaAccount | None = None
        self.registered: asyncio.Future[tuple[int, str]] | None = None
        self.calls: dict[str, GatewayCall] = {}
        self.tasks = Tasks(f"client {ws.remote_address}", log, self._report_failure)

    async def send(self, msg: GatewayMessage) -> None:
        try:
            await self.ws.send(GATEWAY_MESSAGES.encode(msg))
        except websockets.ConnectionClosed:
            pass

    def post(self, msg: GatewayMessage) -> None:
        """Send from a callback that cannot await."""
        self.tasks.start(self.send(msg), f"sending {msg.KIND}")

    async def _report_failure(self, what: str, exc: Exception) -> None:
        await self.send(Error(reason=f"gateway: {what} failed: {exc}"))

    async def run(self) -> None:
        async for text in self.ws:
            try:
                msg = CLIENT_MESSAGES.decode(text)
            except MessageError as exc:
                await self.send(Error(reason=f"bad message: {exc}"))
                continue
            try:
                await self.dispatch(msg)
            except Exception as exc:  # one bad request must not end the session (nor the gateway)
                log.exception("%s: %s failed", self.tasks.owner, msg.KIND)
                await self.send(Error(call_id=getattr(msg, "call_id", None), reason=f"{msg.KIND}: {exc}"))

    async def dispatch(self, msg: ClientMessage) -> None:
        match msg:
            case Ping():
                await self.send(Pong(active_calls=self.endpoint.active_calls, media_ports=FramePort.made()))
            case Connect(sip=form):
                await self.login(form)
            case PlaceCall():
                await self.start_call(msg)
            case _:
                call = self.calls.get(msg.call_id)
                if call is None:
                    await self.send(Error(reason=f"no call {msg.call_id!r}"))
                else:
                    await call.request(msg)

    async def login(self, sip: LoginForm) -> None:
        problem = form_problem(sip)
        if problem is not None:
            await self.send(Failed(code=400, reason=problem))
            return
        form = SipAccount(
            login=sip.login,
            auth_name=sip.auth_name or sip.login,
            password=sip.password,
            domain=sip.domain,
            outbound_proxy=sip.outbound_proxy or sip.domain,
            port=sip.port,
        )
        if self.account is not None:
            self.endpoint.remove_account(self.account)
            self.account = None
        self.form = form
        self.registered = asyncio.get_running_loop().create_future()
        server = f"{form.outbound_proxy}:{form.port}"
        self.tasks.owner = f"client {form.login}"
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
        except RuntimeError as exc:  # the process's account table is full
            await self.send(Failed(code=503, reason=f"gateway busy: {exc}; try again later"))
            return
        except Exception as exc:
            await self.send(Failed(code=500, reason=f"gateway cannot create the SIP account: {exc}"))
            return
        try:
            code, reason = await asyncio.wait_for(self.registered, REGISTER_TIMEOUT)
        except TimeoutError:
            code, reason = (
                408,
                f"SIP server {server} did not answer the REGISTER within {REGISTER_TIMEOUT:g} s",
            )
        if 200 <= code < 300:
            await self.send(Connected(login=form.login, domain=form.domain))
            return
        if code in (401, 403, 407):
            reason = f"the SIP server refused the login ({code} {reason})"
        self.endpoint.remove_account(self.account)
        self.account = None
        log.info("login %s failed: %s %s", form.login, code, reason)
        await self.send(Failed(code=code, reason=reason))

    # AccountListener
    def on_registration(self, code: int, reason: str) -> None:
        if self.registered is not None and not self.registered.done():
            self.registered.set_result((code, reason))

    def answer_edit(self, headers: dict[str, str], offer: str) -> None:
        return None  # a call from the phone reaches the browser unimpaired

    def admit_call(self) -> bool:
        return True

    def on_incoming_call(self, call: SipCall, user: str, headers: dict[str, str]) -> None:
        """A call for this client's user: it rings at the client until it answers or rejects."""
        tag = headers.get(CALL_HEADER.lower(), "")
        call_id = tag if CALL_ID_RE.fullmatch(tag) and tag not in self.calls else new_call_id("in-")
        incoming = GatewayCall(self, call_id)
        incoming.state.incoming = True
        incoming.sip = call
        incoming.far_number = user_of(headers.get("p-asserted-identity") or headers.get("from", ""))
        call.listener = incoming
        self.calls[call_id] = incoming
        call.answer_with(180, "Ringing")
        self.post(Incoming(call_id=call_id, caller=incoming.far_number, callee=user))

    async def start_call(self, msg: PlaceCall) -> None:
        if not CALL_ID_RE.fullmatch(msg.call_id) or msg.call_id in self.calls:
            await self.send(Error(reason=f"bad or duplicate call id {msg.call_id!r}"))
            return
        call = GatewayCall(self, msg.call_id)
        self.calls[msg.call_id] = call
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
    """One browser call: WebRTC leg to the client, SIP leg to the SIP server. What it tells
    the client is decided by its CallState; this class does the I/O."""

    def __init__(self, session: ClientSession, call_id: str) -> None:
        self.session = session
        self.call_id = call_id
        self.state = CallState()
        self.sip: SipCall | None = None
        self.pc = webrtc.peer_connection()
        self.bridge = MediaBridge(session.tasks, session.endpoint.clock_rate)
        self.far_number = ""  # the callee, or the caller of an incoming call
        self.transfer_target = ""
        self.consultation: GatewayCall | None = None  # the call an attended transfer replaces
        self.watchdog: MediaWatchdog | None = None
        self.video_offered = False  # the browser offered VP8 or H.264 video: so is the SIP leg
        #: a video call to a number that may take video: its relay, and the far end's SDP
        #: answer ("" when the call ended without one), which the browser's answer waits for
        self.relay: VideoRelay | None = None
        self.far_answer: asyncio.Future[str] | None = None
        #: a call whose audio the gateway relays a packet at a time, not through pjsua's
        #: conference bridge: the browser leg's codec (PCMU, PCMA: passed through untouched;
        #: OPUS: transcoded to the SIP leg's G.711, lab.gateway.opusrelay) and the relay
        self.relayed_audio: str | None = None
        self.audio_relay: AudioPassthrough | None = None

    def report(self, report: Report | None) -> None:
        if report is not None:
            self.session.post(self._status(report))

    def _status(self, report: Report) -> Status:
        return Status(
            call_id=self.call_id,
            status=report.status,
            sip_code=report.code,
            reason=report.reason,
            t=time.time(),
        )

    async def fail(self, code: int, reason: str) -> None:
        await self.session.send(self._status(self.state.fail(code, reason)))
        self.close_media()
        self.session.calls.pop(self.call_id, None)

    async def start(self, msg: PlaceCall) -> None:
        form, account = self.session.form, self.session.account
        if form is None or account is None:
            await self.fail(403, "not logged in: connect with a SIP account first")
            return
        try:
            callee = normalize_number(msg.callee)
        except InvalidNumber as exc:
            await self.fail(484, str(exc))
            return
        self.far_number = callee
        try:
            jitter_buffer = JitterBufferSpec.parse(msg.jitter_buffer) if msg.jitter_buffer else DEFAULT_SPEC
        except ValueError as exc:
            await self.fail(400, f"call.jitter_buffer: {exc}")
            return
        headers = {
            k: v
            for k, v in msg.headers.items()
            if k.startswith(_FORWARDED_HEADER_PREFIX) and "\r" not in v and "\n" not in v
        }
        try:
            impairments = from_header(headers.get(IMPAIR_HEADER, ""))
        except ImpairmentError as exc:
            await self.fail(400, f"call.headers.{IMPAIR_HEADER}: {exc}")
            return
        cfg = self.session.gateway.cfg
        try:
            sip_codec = codecs.from_header(headers.get(CODECS_HEADER, "")).get("sip")
        except codecs.CodecError as exc:
            await self.fail(488, f"call.headers.{CODECS_HEADER}: {exc}")
            return
        problem = offer_problem(msg.sdp)
        self.relayed_audio = self._relayed_audio(msg.sdp, jitter_buffer, sip_codec, impairments)
        if problem is None:
            self._take_browser_audio()
            try:
                offer = RTCSessionDescription(sdp=webrtc.loopback_only(msg.sdp), type="offer")
                await self.pc.setRemoteDescription(offer)
            except Exception as exc:  # aiortc says what it cannot take with asserts as well
                problem = f"WebRTC refused the offer: {str(exc) or type(exc).__name__}"
            webrtc.use_jitter_buffer(self.pc, jitter_buffer)
            webrtc.on_telephone_events(self.pc, self._browser_digit)
        if problem is not None:
            await self.fail(488, f"call.sdp: {problem}")
            return
        if self.session.endpoint.active_calls >= MAX_CALLS:  # checked and taken with no await between
            worker = self.session.gateway.party.name
            await self.fail(
                503,
                f"gateway busy: {worker}, which has this client, carries {MAX_CALLS} calls at once "
                f"(pjsua2's limit per process); the lab carries {cfg.calls_at_once}",
            )
            return
        # INVITE first, so SIP call setup overlaps ICE and DTLS.
        self.video_offered = video.offers_video(msg.sdp)
        gateway = self.session.gateway.party
        relay_ports = gateway.relay_ports
        try:
            if self.video_offered and video.may_take_video(callee, cfg.mobile_number_re):
                self.relay = VideoRelay.open(gateway.host, relay_ports, self.session.tasks)
                self.far_answer = asyncio.get_running_loop().create_future()
            if self.relayed_audio == "OPUS":
                self.audio_relay = self._opus_relay(msg.sdp, gateway.host, relay_ports)
            elif self.relayed_audio is not None:
                self.audio_relay = AudioPassthrough.open(gateway.host, relay_ports, self.session.tasks)
                self.audio_relay.codec = self.relayed_audio
        except OSError as exc:
            await self.fail(503, f"gateway busy: {exc}")
            return
        self.sip = SipCall(self.session.endpoint, account)
        self.sip.listener = self
        self.sip.media_elsewhere = self.audio_relay is not None
        if self.relayed_audio in PASSTHROUGH_CODECS:
            offered = [self.relayed_audio]
        else:
            offered = [sip_codec] if sip_codec else list(codecs.default_offer(cfg, "sip"))
        self.sip.sdp_edit = compose(
            codecs.offer(offered),
            passthrough.sip_edit(self.audio_relay.port) if self.audio_relay else None,
            detour.offering(cfg, "sip", self.call_id, cfg.gateway.host, "to-browser", impairments),
            video.sip_offer(msg.sdp, self.relay.port if self.relay else None) if self.video_offered else None,
        )
        try:
            if self.video_offered:  # a second m-line for the video, both short enough to edit
                self.sip.dial(f"sip:{callee}@{form.domain}", headers, media_lines=2, codecs=offered)
            else:
                self.sip.dial(f"sip:{callee}@{form.domain}", headers)
        except RuntimeError as exc:
            await self.fail(500, f"gateway could not send the INVITE: {exc}")
            return
        await self.session.send(self._status(Report(CallStatus.TRYING)))
        if self.far_answer is not None:  # the video waits for the far end's word on it
            self.session.tasks.start(
                self._answer_browser(msg.sdp), f"call {self.call_id}: answering the browser"
            )
        else:
            await self._answer_browser(msg.sdp)

    async def _answer_browser(self, offer: str) -> None:
        """The WebRTC answer: audio, and the video relayed when the far end took it (else
        declined: the browser sends none)."""
        cfg = self.session.gateway.cfg
        plan = None
        if self.far_answer is not None and self.relay is not None:
            far_answer = await self.far_answer
            if not far_answer or self.state.ended or self.relay is None:
                return  # the call is over before the far end answered
            plan = video.relay_plan(far_answer, offer)
            if plan is not None:
                await self.relay.start(plan.far, {plan.codec: plan.sip_pt})
            else:
                self.relay.close()
                self.relay = None
        if self.audio_relay is None:
            self.pc.addTrack(self.bridge.to_browser)
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio" and self.audio_relay is not None:
                self.audio_relay.attach(self.pc, transceiver, self.audio_relay.browser_encodings)
            elif transceiver.kind == "video" and self.relay is not None and plan is not None:
                self.relay.attach(self.pc, transceiver, (plan.codec,))
            elif transceiver.kind == "video":
                transceiver.direction = "inactive"
        answer = await self.pc.createAnswer()
        # The browser leg is coded alike both ways: ask the client for what it asked of us.
        sdp = webrtc.with_opus_fmtp(answer.sdp, webrtc.opus_fmtp(offer))
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        webrtc.encode_as_asked(self.pc)
        sdp = self.pc.localDescription.sdp
        browser_leg = detour.answering(cfg, self.call_id, cfg.gateway.host, "to-phone", offer)
        if browser_leg is not None:  # answer on the network the browser's offer came from
            sdp = await browser_leg.arewrite(sdp)
        if self.audio_relay is not None:
            self.audio_relay.negotiated()
        if self.relay is not None:
            self.relay.negotiated()
        else:
            sdp = video.declined_toward_browser(sdp)
        await self.session.send(Sdp(call_id=self.call_id, sdp=sdp))

    def _browser_digit(self, digit: str) -> None:
        """A DTMF digit in the browser's RTP (RTCDTMFSender): on to the SIP leg the same way."""
        if self.sip is not None and self.state.established and not self.state.ended:
            try:
                self.sip.send_dtmf(digit, "rfc4733")
            except RuntimeError as exc:
                self.session.tasks.start(self.error(f"dtmf: {exc}"), f"call {self.call_id}: DTMF")

    def _take_browser_audio(self) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self.relayed_audio is None:
                self.bridge.browser_track(track)

    async def request(self, msg: ClientMessage) -> None:
        """A request from the client about this call."""
        match msg:
            case Hangup():
                self.hangup()
            case Answer():
                await self.accept()
            case AnswerSdp(sdp=sdp):
                await self.complete(sdp)
            case Reject(code=code):
                self.reject(code)
            case SendDtmf() | Transfer() | Hold() | Unhold():
                await self.control(msg)

    async def accept(self) -> None:
        """The client answers an incoming call: offer it WebRTC audio first."""
        self._take_browser_audio()
        self.pc.addTrack(self.bridge.to_browser)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.session.send(Offer(call_id=self.call_id, sdp=self.pc.localDescription.sdp))

    async def complete(self, sdp: str) -> None:
        """The client's SDP answer: the WebRTC leg is set, so answer the SIP call (200)."""
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=webrtc.loopback_only(sdp), type="answer")
        )
        webrtc.encode_as_asked(self.pc)
        if self.sip is not None:
            self.sip.answer_with(200, "OK")

    def reject(self, code: int) -> None:
        self.state.hangup_requested = True
        self.state.end_reason = "rejected"
        if self.sip is not None:
            self.sip.answer_with(code if 400 <= code < 700 else 603, "Decline" if code == 603 else "")

    def hangup(self) -> None:
        self.state.hangup_requested = True
        if self.sip is not None:
            self.sip.hangup_with()

    async def control(self, msg: SendDtmf | Transfer | Hold | Unhold) -> None:
        """DTMF, transfer, hold and unhold from the client, carried out on the SIP leg."""
        if self.sip is None or not self.state.established:
            await self.error(f"{msg.KIND}: the call is not established")
            return
        try:
            match msg:
                case SendDtmf(digits=digits, method=method):
                    if not digits or any(d not in DTMF_DIGITS for d in digits):
                        raise RuntimeError(f"DTMF digits must be among {DTMF_DIGITS}, not {digits!r}")
                    if method == "info":
                        self.session.tasks.start(self._send_info_digits(digits), f"call {self.call_id}: INFO")
                    elif self.audio_relay is not None:
                        self.audio_relay.send_digits(digits)
                    else:
                        self.sip.send_dtmf(digits, "rfc4733")
                case Transfer(replaces=str(other_id)):
                    self._transfer_to_call(other_id)
                case Transfer(target=target):
                    number = normalize_number(target or "")
                    assert self.session.form is not None
                    self.transfer_target = number
                    self.sip.transfer(f"sip:{number}@{self.session.form.domain}")
                case Hold():
                    self.sip.hold()
                case Unhold():
                    self.sip.unhold()
        except (RuntimeError, InvalidNumber) as exc:
            await self.error(f"{msg.KIND}: {exc}")

    async def error(self, reason: str) -> None:
        await self.session.send(Error(call_id=self.call_id, reason=reason))

    def _transfer_to_call(self, other_id: str) -> None:
        """Attended transfer: REFER our far end to the consultation call's, with Replaces."""
        assert self.sip is not None
        other = self.session.calls.get(other_id)
        if other is None or other is self or other.sip is None or not other.state.established:
            raise RuntimeError(f"no established call {other_id!r} on this session to transfer to")
        self.transfer_target = other.far_number
        self.sip.transfer_replacing(other.sip)
        self.consultation = other
        # The far end of the consultation call gets an INVITE with Replaces and hangs up
        # that call (BYE), usually before our final NOTIFY: it must not read "remote hangup".
        other.state.end_reason = f"transferred: joined to {self.far_number}"

    def on_transfer_status(self, call: SipCall, code: int, reason: str, final: bool) -> None:
        """NOTIFY from the far end about our REFER: success ends our leg, failure keeps it."""
        self.session.post(
            TransferEvent(
                call_id=self.call_id, target=self.transfer_target, code=code, reason=reason, final=final
            )
        )
        if final and 200 <= code < 300:
            self.state.end_reason = f"transferred to {self.transfer_target}"
            call.hangup_with()
        elif final and self.consultation is not None:
            self.consultation.state.end_reason = ""  # the transfer failed: it goes on as it was
        if final:
            self.consultation = None

    async def _send_info_digits(self, digits: str) -> None:
        """One INFO per digit, spaced: sent all at once they overtake each other in the SIP
        server's parallel workers and the far end refuses the ones whose CSeq went backwards."""
        for digit in digits:
            if self.sip is None or self.state.ended:
                return
            try:
                self.sip.send_dtmf(digit, "info")
            except RuntimeError as exc:
                await self.error(f"dtmf: {exc}")
                return
            await asyncio.sleep(INFO_DTMF_SPACING)

    # CallListener
    def on_media_state(self, call: SipCall, state: str) -> None:
        if self.watchdog is not None and self.state.established and not self.state.ended:
            self.watchdog.paused = state != "active"
        self.report(self.state.media_state(state))

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        self.session.post(DtmfEvent(call_id=self.call_id, digit=digit, method=method))

    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None:
        self.report(
            self.state.sip_state(
                snap.state, snap.status_code, snap.reason, call.remote_reason, call.remote_cause
            )
        )
        if snap.state != "DISCONNECTED":
            return
        if self.far_answer is not None and not self.far_answer.done():
            self.far_answer.set_result("")
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.sip is not None:  # else the media is closed already (the call failed, the client left)
            self.close_media()
            self.session.calls.pop(self.call_id, None)

    def on_answer(self, call: SipCall, sdp: str) -> None:
        """The far end's SDP answer: where the passed-through audio goes, and what it made of
        the video the browser offered."""
        if self.audio_relay is not None:
            self._start_audio_relay(call, sdp)
        if not self.video_offered:
            return
        if self.far_answer is not None and not self.far_answer.done():
            self.far_answer.set_result(sdp)
        media = parse_sdp(sdp)
        far_end = self.session.gateway.cfg.name_at(media[0].address) if media else "the far end"
        declined, reason = video.far_end_verdict(sdp, far_end)
        self.session.post(VideoEvent(call_id=self.call_id, declined=declined, reason=reason, t=time.time()))

    def on_media_active(self, call: SipCall) -> None:
        relay = self.audio_relay
        if relay is None:
            self.bridge.attach(call)
        elif (where := call.remote_rtp_address()) is not None:
            host, _, port = where.rpartition(":")
            relay.aim((host, int(port)))
        if self.watchdog is None:
            timeout = self.session.gateway.cfg.media_timeout
            received = call.rx_packets if relay is None else lambda: relay.counts.from_sip
            self.watchdog = MediaWatchdog(call, self._media_timeout, timeout, self.session.tasks, received)

    def _relayed_audio(
        self,
        offer: str,
        jitter_buffer: JitterBufferSpec,
        sip_choice: str | None,
        impairments: tuple[LegImpairment, ...],
    ) -> str | None:
        """The browser leg's codec when the gateway relays this call's audio a packet at a
        time (self.relayed_audio), else None: through the conference bridge. Opus is
        transcoded so to the SIP leg's G.711 only in a narrowband lab, and not for a call that
        asks the gateway for a jitter buffer or puts a network on the browser leg: those
        measure aiortc's jitter buffer, which only the bridged way has."""
        cfg = self.session.gateway.cfg
        if not cfg.passthrough or video.offers_video(offer):
            return None
        chosen = passthrough.browser_codec(offer, webrtc.audio_encodings())
        if chosen in PASSTHROUGH_CODECS:
            return chosen if sip_choice in (None, chosen) else None
        opus_relayed = (
            chosen == "OPUS"
            and not cfg.wideband
            and sip_choice in (None, *PASSTHROUGH_CODECS)
            and jitter_buffer == DEFAULT_SPEC
            and not on_leg(impairments, "browser")
        )
        return chosen if opus_relayed else None

    def _opus_relay(self, offer: str, host: str, ports: range) -> OpusRelay:
        relay = OpusRelay.open(host, ports, self.session.tasks)
        fmtp = webrtc.opus_fmtp(offer)  # what the browser asks of the gateway's encoder
        relay.opus_bitrate = fmtp.get("maxaveragebitrate", relay.opus_bitrate)
        relay.opus_fec = bool(fmtp.get("useinbandfec"))
        relay.on_digit_refused = self._digit_refused
        return relay

    def _digit_refused(self, reason: str) -> None:
        self.session.tasks.start(self.error(f"dtmf: {reason}"), f"call {self.call_id}: DTMF")

    def _start_audio_relay(self, call: SipCall, sdp: str) -> None:
        assert self.audio_relay is not None
        found = passthrough.far_end(sdp)
        if found is None:
            log.warning("call %s: the far end's answer has no audio to relay", self.call_id)
            return
        far, pts = found
        self.audio_relay.on_digit = lambda digit: self.on_dtmf(call, digit, "rfc4733")
        self.session.tasks.start(self.audio_relay.start(far, pts), f"call {self.call_id}: audio relay")

    def _media_timeout(self, call: SipCall) -> None:
        cfg = self.session.gateway.cfg
        where = call.remote_rtp_address()
        silent = f"{cfg.name_at(where.rsplit(':', 1)[0])} ({where})" if where else "the SIP side"
        self.state.end_reason = f"media timeout: no RTP from {silent} for {cfg.media_timeout:g} s"
        self.state.end_code = MEDIA_TIMEOUT_CAUSE
        log.warning("call %s: %s", self.call_id, self.state.end_reason)
        call.hangup_with(cause=self.state.end_reason, cause_code=MEDIA_TIMEOUT_CAUSE)

    def close_media(self) -> None:
        self.bridge.close()
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self.audio_relay is not None:
            self.audio_relay.close()
            self.audio_relay = None
        self.session.tasks.start(self.pc.close(), f"call {self.call_id}: closing the peer connection")
        self.sip = None


_HOST_RE = re.compile(r"[A-Za-z0-9.-]+")
_USER_RE = re.compile(r"[A-Za-z0-9+_.*#-]+")


def form_problem(sip: LoginForm) -> str | None:
    """What is wrong with a login form, naming the field; None when it can be used."""
    for name, value, pattern in (
        ("login", sip.login, _USER_RE),
        ("auth_name", sip.auth_name or sip.login, _USER_RE),
        ("domain", sip.domain, _HOST_RE),
        ("outbound_proxy", sip.outbound_proxy or sip.domain, _HOST_RE),
    ):
        if not pattern.fullmatch(value) or len(value) > 128:
            what = "host" if pattern is _HOST_RE else "user"
            return f"connect.sip.{name}: {value[:40]!r} is not a SIP {what}"
    if not 1 <= sip.port <= 65535:
        return f"connect.sip.port: {sip.port} is not a port (1-65535)"
    if any(c in sip.password for c in "\r\n\x00"):
        return "connect.sip.password: holds a line break or NUL"
    return None


def main() -> None:
    run(
        "Gateway",
        lambda cfg: codecs.enabled(codecs.default_offer(cfg, "sip"), codecs.LEG_CODECS["sip"]),
        Gateway,
    )


if __name__ == "__main__":
    main()
