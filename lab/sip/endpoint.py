"""Everything pjsua2, and the rules that keep a pjsua2 process alive.

This is the only module that imports pjsua2. The rules it enforces (each one aborted a
process when ignored, see shared/notes/feasibility.md):

* one Endpoint per process, transport before any account, at most 4 calls per process;
* headless audio: null sound device that never auto-closes (else the bridge clock stops);
* one clock rate for every call of a process (the conference bridge's): a wideband codec on
  a narrowband bridge is cut to 4 kHz there, so a wideband lab runs every party at 16 kHz;
* threads: pjsua runs one worker thread for SIP events; its callbacks only snapshot what
  they need and post it to the asyncio loop. Every pjsua2 method is called from the loop
  thread, so the party logic is single-threaded;
* a Call object is only touched while it is active and is dropped at DISCONNECTED
  (a stale Call whose id is reused would act on the *new* call);
* players, recorders and ports stay referenced while in use; Python-fed ports (FramePort)
  are reused, never destroyed before shutdown;
* a stream with nothing connected still sends: the bridge gives it empty frames and pjmedia
  encodes them as silence. A call whose audio another socket carries (media_elsewhere: the
  gateway's passthrough) has its stream paused in onStreamCreated, before its first frame;
* an SDP is edited (SipCall.sdp_edit) on pjsua's thread, inside onCallSdpCreated, before
  it is sent: pjsua2 reparses wholeSdp when it changed. The edit is set before dial() or
  the first answer (pjsua 2.15 creates an incoming call's answer when it is answered) and
  never raises into pjsua;
* every request gets an answer, as RFC 3261 and 4475 ask, from hooks of ours in pjsip
  (RequestChecks): one pjsip cannot parse (pjsip only logs it), one no module of pjsua takes
  (an unknown method, an INFO or a BYE outside any dialog, a REGISTER to a phone: pjsip
  logs "dropped/unhandled by any modules"), one pjsua would take though malformed (a CSeq
  of another method, two Content-Lengths). Unanswered, the sender retransmits for 32 s.
  The hooks read pjsip's C structs through ctypes; their layout (PJSIP 2.15.1, x86-64) is
  checked on every request, and one that does not match is left as pjsip leaves it instead
  of read further;
* clean exit: hang up, drop references, collect (frozen objects too), then libDestroy.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import pjsua2 as pj

from lab.audio import wav_is_final
from lab.jitterspec import JitterBufferSpec
from lab.sip import badrequest
from lab.sip.message import METHODS, header_params, parse_sip, uri_of
from lab.tasks import Tasks

log = logging.getLogger(__name__)

MAX_CALLS = 4  # the pjsua2-python wheel is compiled with PJSUA_MAX_CALLS = 4
MAX_ACCOUNTS = 8  # PJSUA_MAX_ACC: pjsua asserts (aborts the process) on a 9th account
CLOCK_RATE = 8000  # the bridge's unless the lab is wideband (SipEndpoint's clock_rate)
FRAME_MS = 20
#: Loopback has no network jitter: one frame of hold while packets come on time, not
#: pjmedia's adaptive default, keeps each SIP hop from adding tens of milliseconds
#: (LabConfig.sip_jitter_buffer sets another for a whole lab).
SIP_JITTER_BUFFER = JitterBufferSpec(adaptive=True, min_ms=FRAME_MS, max_ms=4 * FRAME_MS)

# What pjsip calls its codecs; the lab uses short names.
CODEC_IDS = {
    "PCMU": "PCMU/8000/1",
    "PCMA": "PCMA/8000/1",
    "GSM": "GSM/8000/1",
    "G722": "G722/16000/1",
    "SPEEX8": "speex/8000/1",
    "SPEEX16": "speex/16000/1",
    "SPEEX32": "speex/32000/1",
    "ILBC": "iLBC/8000/1",
}


@dataclass(frozen=True)
class CallSnapshot:
    """What a call callback saw, taken on the pjsua thread and read on the loop thread."""

    state: str  # CALLING, INCOMING, EARLY, CONNECTING, CONFIRMED, DISCONNECTED
    status_code: int
    reason: str
    remote_uri: str


class CallListener(Protocol):
    def on_call_state(self, call: SipCall, snap: CallSnapshot) -> None: ...

    def on_media_active(self, call: SipCall) -> None: ...

    def on_media_state(self, call: SipCall, state: str) -> None:
        """state: active, local_hold (we hold), remote_hold (the far end holds), none."""
        ...

    def on_dtmf(self, call: SipCall, digit: str, method: str) -> None:
        """method: rfc4733 or info."""
        ...


class TransferListener(Protocol):
    def on_transferring(self, call: SipCall, new_call: SipCall) -> None:
        """The far end REFERred `call`; `new_call` goes to the transfer target."""
        ...

    def on_transfer_status(self, call: SipCall, code: int, reason: str, final: bool) -> None:
        """NOTIFY progress of a REFER this call sent."""
        ...

    def on_replaced(self, old: SipCall, new: SipCall) -> None:
        """An INVITE with Replaces (attended transfer) took over `old`; pjsua answers `new`
        and ends `old` by itself."""
        ...


class AccountListener(Protocol):
    def admit_call(self) -> bool:
        """Runs on the pjsua thread, before the call is posted: False refuses it with 503
        at once, so a refused call holds none of the process's 4 call slots for long."""
        ...

    def answer_edit(self, headers: dict[str, str], offer: str) -> Callable[[str, str], str] | None:
        """Runs on the pjsua thread, before the call is posted: the SipCall.sdp_edit of the
        call's answer, which pjsua may create before on_incoming_call runs. A pure function
        of the INVITE's headers and SDP offer."""
        ...

    def on_incoming_call(self, call: SipCall, user: str, headers: dict[str, str]) -> None: ...

    def on_registration(self, code: int, reason: str) -> None: ...


_STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}

_MEDIA_STATES = {
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_NONE: "none",
}


def _media_config(
    med: pj.MediaConfig, jitter_buffer: JitterBufferSpec = SIP_JITTER_BUFFER, clock_rate: int = CLOCK_RATE
) -> None:
    """The media settings of every pjsua2 party (and of the offline codecs: the same
    `quality` sets Speex's encoder quality)."""
    med.clockRate = clock_rate
    med.sndClockRate = clock_rate
    med.audioFramePtime = FRAME_MS
    med.noVad = True
    med.ecTailLen = 0
    med.sndAutoCloseTime = -1
    med.quality = 10
    # pjmedia's jitter buffer starts at jbInit and keeps its prefetch between jbMinPre and
    # jbMaxPre: one value for all three is a fixed buffer.
    med.jbInit = jitter_buffer.min_ms
    med.jbMinPre = jitter_buffer.min_ms
    med.jbMaxPre = jitter_buffer.max_ms


class SipEndpoint:
    """The process's one pjsua2 Endpoint, driven from one asyncio loop."""

    _created = False

    def __init__(
        self,
        *,
        name: str,
        host: str,
        sip_port: int,
        rtp_port: int,
        rtp_port_count: int,
        codecs: list[str],
        jitter_buffer: JitterBufferSpec = SIP_JITTER_BUFFER,
        clock_rate: int = CLOCK_RATE,
        log_path: Path | None = None,
    ) -> None:
        if SipEndpoint._created:
            raise RuntimeError("one pjsua2 Endpoint per process: a second one aborts it")
        SipEndpoint._created = True
        self.name = name
        self.host = host
        self.loop = asyncio.get_running_loop()
        self.rtp_port = rtp_port
        self.rtp_port_count = rtp_port_count
        self.clock_rate = clock_rate  # the conference bridge's, so its recorders' too
        self._calls: set[SipCall] = set()
        self._keep: list[object] = []  # accounts: pjsua2 needs them referenced
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 1
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = MAX_CALLS
        cfg.uaConfig.userAgent = f"calllab {name}"
        _media_config(cfg.medConfig, jitter_buffer, clock_rate)
        cfg.logConfig.level = 4 if log_path else 1
        cfg.logConfig.consoleLevel = 1
        if log_path:
            cfg.logConfig.filename = str(log_path)
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = sip_port
        tcfg.boundAddress = host
        tcfg.publicAddress = host
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self.set_codecs(codecs)
        self.requests = RequestChecks(name)  # referenced until libDestroy: pjsip holds it

    def set_codecs(self, codecs: list[str]) -> None:
        """Enable exactly these codecs, first preferred."""
        self.codecs = list(codecs)
        wanted = {CODEC_IDS[c.upper()]: 255 - i for i, c in enumerate(codecs)}
        for info in self.ep.codecEnum2():
            self.ep.codecSetPriority(info.codecId, wanted.get(info.codecId, 0))

    def post(self, fn: Callable[..., None], *args: object) -> None:
        """Run fn on the loop thread (called from pjsua's threads)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def rtp_config(self) -> pj.TransportConfig:
        tcfg = pj.TransportConfig()
        tcfg.port = self.rtp_port
        tcfg.portRange = self.rtp_port_count
        tcfg.boundAddress = self.host
        tcfg.publicAddress = self.host
        return tcfg

    def account(
        self,
        listener: AccountListener,
        *,
        user: str,
        domain: str,
        registrar: str | None = None,
        proxy: str | None = None,
        auth_name: str | None = None,
        password: str | None = None,
    ) -> PjsuaAccount:
        """A new account; RuntimeError when the process already has MAX_ACCOUNTS."""
        if len(self._keep) >= MAX_ACCOUNTS:
            raise RuntimeError(f"all {MAX_ACCOUNTS} SIP accounts of this process are in use")
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{user}@{domain}"
        if registrar:
            cfg.regConfig.registrarUri = f"sip:{registrar}"
            cfg.regConfig.timeoutSec = 300
            cfg.regConfig.retryIntervalSec = 0  # report failure, do not hammer the server
        else:
            cfg.regConfig.registerOnAdd = False
        if proxy:
            cfg.sipConfig.proxies.append(f"sip:{proxy};lr")
        if password is not None:
            cred = pj.AuthCredInfo("digest", "*", auth_name or user, 0, password)
            cfg.sipConfig.authCreds.append(cred)
        cfg.mediaConfig.transportConfig = self.rtp_config()
        # No re-INVITE to lock a far end that answered several codecs (baresip does) to one:
        # pjsua's re-offer would set inactive the video m-line the gateway relays itself.
        cfg.mediaConfig.lockCodecEnabled = False
        cfg.natConfig.sdpNatRewriteUse = False
        cfg.natConfig.contactRewriteUse = False
        cfg.natConfig.viaRewriteUse = False
        acc = PjsuaAccount(self, listener)
        acc.create(cfg)
        self._keep.append(acc)
        return acc

    def account_by_id(self, acc_id: int) -> PjsuaAccount | None:
        return next((a for a in self._keep if isinstance(a, PjsuaAccount) and a.getId() == acc_id), None)

    def remove_account(self, acc: PjsuaAccount) -> None:
        if acc in self._keep:
            self._keep.remove(acc)
            acc.shutdown()

    def shutdown(self) -> None:
        """Hang up, drop every reference, collect, destroy: in that order or it aborts."""
        try:
            self.ep.hangupAllCalls()
        except pj.Error:
            pass
        self._calls.clear()
        FramePort._made.clear()
        for acc in self._keep:
            if isinstance(acc, PjsuaAccount):
                acc.shutdown()
        self._keep.clear()
        gc.unfreeze()  # what the party froze once up (lab.process) must be collectable too
        gc.collect()
        self.ep.libDestroy()

    # --- call bookkeeping: the endpoint owns Call lifetimes --------------------------
    def _adopt(self, call: SipCall) -> None:
        self._calls.add(call)

    def _release(self, call: SipCall) -> None:
        self._calls.discard(call)

    @property
    def active_calls(self) -> int:
        return len(self._calls)


class PjsuaAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, endpoint: SipEndpoint, listener: AccountListener) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.listener = listener

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802 (pjsua2 API)
        # pjsua2 hangs up a call that has no Call object when this returns: create it here.
        call = SipCall(self.endpoint, self, prm.callId)
        if not self.listener.admit_call():
            # Stays in the endpoint's calls until DISCONNECTED: dropped now, its destructor
            # would hang the call up at once with its own code instead of the 503.
            call.alive = False
            op = pj.CallOpParam()
            op.statusCode = 503
            op.reason = f"{self.endpoint.name}: busy"
            call.answer(op)  # allowed on the pjsua thread, inside this callback
            return
        invite = parse_sip(prm.rdata.wholeMsg)
        user, headers = (invite.request_user, invite.headers) if invite else ("", {})
        call.source = str(prm.rdata.srcAddress)  # set before any other thread sees the call
        call.offer = invite.body if invite else ""
        try:
            call.sdp_edit = self.listener.answer_edit(headers, invite.body if invite else "")
        except Exception:
            log.exception("%s: no SDP edit for an incoming call", self.endpoint.name)
        self.endpoint.post(self.listener.on_incoming_call, call, user, headers)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        self.endpoint.post(self.listener.on_registration, int(prm.code), str(prm.reason))


class SipCall(pj.Call):  # type: ignore[misc]
    """A pjsua2 call whose callbacks are delivered on the asyncio loop.

    Methods here are the only way party code acts on a call; each checks the call is still
    alive first, because pjsua asserts (aborting the process) on a dead call.
    """

    def __init__(self, endpoint: SipEndpoint, acc: PjsuaAccount, call_id: int = -1) -> None:
        if call_id == -1:
            super().__init__(acc)
        else:
            super().__init__(acc, call_id)
        self.endpoint = endpoint
        self.listener: CallListener | None = None
        self.source = ""  # "host:port" an incoming call's INVITE came from
        self.offer = ""  # the SDP of an incoming call's INVITE
        self.alive = True
        self.last_code = 0
        self.last_reason = ""
        self.remote_reason = ""  # the Reason header of the far end's BYE, if it gave one
        self.remote_cause: int | None = None  # ... and its cause (RFC 3326: a SIP code)
        #: (Call-ID, local tag, remote tag) from the 2xx to our INVITE: pjsua2's CallInfo has no tags
        self.dialog_ids: tuple[str, str, str] | None = None
        #: (this call's new SDP, the far end's SDP or "") -> the SDP to send, on pjsua's thread
        self.sdp_edit: Callable[[str, str], str] | None = None
        #: Another socket of the party carries this call's audio (its sdp_edit names that
        #: socket's ports): pjsua's audio stream is paused as soon as it is made, since even
        #: unconnected it sends silence (pjmedia encodes a bridge's empty frame as zeros).
        self.media_elsewhere = False
        endpoint._adopt(self)

    # pjsua thread ---------------------------------------------------------------------
    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        snap = CallSnapshot(
            _STATE_NAMES.get(ci.state, str(ci.state)),
            int(ci.lastStatusCode),
            str(ci.lastReason),
            str(ci.remoteUri),
        )
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # pjsua reuses this call's id as soon as this callback returns. From now on no
            # code of ours may act on it (alive), and the C++ object must never be deleted:
            # its destructor hangs up whatever call then has the id. It is left to C++
            # (a few hundred bytes a call) instead of to Python's collector.
            self.alive = False
            self.__disown__()
        self.endpoint.post(self._deliver_state, snap)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        audio = [m.status for m in ci.media if m.type == pj.PJMEDIA_TYPE_AUDIO]
        state = _MEDIA_STATES.get(audio[0], "none") if audio else "none"
        self.endpoint.post(self._deliver_media, state)

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:  # noqa: N802
        edit = self.sdp_edit
        if edit is None:
            return
        local = str(prm.sdp.wholeSdp)
        if not local:  # pjsua2 leaves it empty when it is over PJSUA2_MAX_SDP_BUF_LEN
            log.warning("%s: an SDP too long to edit went out unedited", self.endpoint.name)
            return
        try:
            edited = edit(local, str(prm.remSdp.wholeSdp))
        except Exception:
            log.exception("%s: editing an SDP failed; it went out unedited", self.endpoint.name)
            return
        if edited != local:
            prm.sdp.wholeSdp = edited

    def onStreamCreated(self, prm: pj.OnStreamCreatedParam) -> None:  # noqa: N802
        # On pjsua's thread, before the bridge gives the new stream its first frame.
        if self.media_elsewhere:
            _pause_stream(int(prm.stream), self.endpoint.name)

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:  # noqa: N802
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE or event.body.tsxState.type != pj.PJSIP_EVENT_RX_MSG:
            return
        message = parse_sip(str(event.body.tsxState.src.rdata.wholeMsg))
        if message is None:
            return
        status = message.status or 0
        if 200 <= status < 300 and message.method == "INVITE" and self.dialog_ids is None:
            ids = (message.headers.get("call-id", ""), message.tag("from"), message.tag("to"))
            self.endpoint.post(setattr, self, "dialog_ids", ids)
            self.endpoint.post(self._deliver_answer, message.body)
        if message.is_request and message.method == "BYE":
            reason = header_params(message.headers.get("reason", ""))
            if reason.get("text"):
                self.endpoint.post(setattr, self, "remote_reason", reason["text"])
            if reason.get("cause", "").isdigit():
                self.endpoint.post(setattr, self, "remote_cause", int(reason["cause"]))

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        # Listeners that take transfers implement TransferListener as well.
        transferring = getattr(self.listener, "on_transferring", None)
        if transferring is None:
            prm.statusCode = 603  # this party does not take transfers
            return
        # pjsua places the new call to the Refer-To itself; it needs its Call object now.
        # (No Call keeps its Account referenced: a removed account collected late would
        # delete whichever account has reused its id.)
        account = self.endpoint.account_by_id(self.getInfo().accId)
        if account is None:
            prm.statusCode = 603
            return
        new_call = SipCall(self.endpoint, account)
        prm.newCall = new_call
        self.endpoint.post(transferring, self, new_call)

    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:  # noqa: N802
        replaced = getattr(self.listener, "on_replaced", None)
        account = self.endpoint.account_by_id(self.getInfo().accId)
        if replaced is None or account is None:
            return  # pjsua2 then hangs up the replacing call: it has no Call object
        new_call = SipCall(self.endpoint, account, int(prm.newCallId))
        prm.newCall = new_call
        self.endpoint.post(replaced, self, new_call)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        code, reason, final = int(prm.statusCode), str(prm.reason), bool(prm.finalNotify)
        status = getattr(self.listener, "on_transfer_status", None)
        if status is not None:
            self.endpoint.post(status, self, code, reason, final)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        self.endpoint.post(self._deliver_dtmf, str(prm.digit), method)

    # loop thread ----------------------------------------------------------------------
    def _deliver_state(self, snap: CallSnapshot) -> None:
        if snap.status_code:
            self.last_code, self.last_reason = snap.status_code, snap.reason
        if snap.state == "DISCONNECTED":
            self.alive = False
            self.endpoint._release(self)
        if self.listener:
            self.listener.on_call_state(self, snap)
        if snap.state == "DISCONNECTED":
            # The disowned C++ Call keeps this Python object alive after the call: what it
            # refers to would live on too (the gateway's whole call with its peer
            # connection: 0.4 MB a call). The listener has had its last word.
            self.listener = None

    def _deliver_media(self, state: str) -> None:
        if self.alive and self.listener:
            self.listener.on_media_state(self, state)
            if state == "active":
                self.listener.on_media_active(self)

    def _deliver_answer(self, sdp: str) -> None:
        # Listeners that read the far end's SDP answer (the gateway's video) implement on_answer.
        answered = getattr(self.listener, "on_answer", None)
        if self.alive and answered is not None:
            answered(self, sdp)

    def _deliver_dtmf(self, digit: str, method: str) -> None:
        if self.alive and self.listener:
            self.listener.on_dtmf(self, digit, method)

    def _usable(self) -> bool:
        return self.alive and self.getId() >= 0 and self.isActive()

    def dial(
        self,
        uri: str,
        headers: dict[str, str] | None = None,
        media_lines: int = 1,
        codecs: list[str] | None = None,
    ) -> None:
        """`media_lines` > 1: more audio m-lines, for an sdp_edit to make another medium of
        (pjsua keeps its media per m-line and aborts on one it did not provision). `codecs`:
        the only ones the offer lists, so that two m-lines of every codec stay within what
        onCallSdpCreated may edit (PJSUA2_MAX_SDP_BUF_LEN); pjsua creates the offer inside
        makeCall, so the endpoint's own list is back before anything else runs on this thread."""
        prm = _op_param(headers=headers, defaults=True)
        prm.opt.audioCount = media_lines
        usual = self.endpoint.codecs
        try:
            if codecs:
                self.endpoint.set_codecs(codecs)
            self.makeCall(uri, prm)
        except pj.Error as exc:
            # The call never got an id: any further method on it would abort the process.
            self.alive = False
            self.endpoint._release(self)
            raise RuntimeError(exc.info()) from None
        finally:
            if codecs:
                self.endpoint.set_codecs(usual)

    def answer_with(self, code: int, reason: str = "") -> None:
        if not self._usable():
            return
        try:
            self.answer(_op_param(code, reason))
        except pj.Error as exc:
            log.warning("answer %d: %s", code, exc.info())

    def hangup_with(self, code: int = 0, reason: str = "", cause: str = "", cause_code: int = 200) -> None:
        """Final response `code` while ringing, else BYE; `cause` goes in a Reason header
        with the SIP code `cause_code` (RFC 3326): 200 for a normal end."""
        if not self._usable():
            return
        text = cause.replace('"', "'")
        header = {"Reason": f'SIP;cause={cause_code};text="{text}"'} if cause else None
        prm = _op_param(code, reason, header)
        try:
            self.hangup(prm)
        except pj.Error as exc:
            log.warning("hangup: %s", exc.info())

    def send_dtmf(self, digits: str, method: str = "rfc4733") -> None:
        """RFC 4733 telephone-events in the RTP, or SIP INFO (application/dtmf-relay)."""
        if not self._usable():
            raise RuntimeError("the call is not active")
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if method == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
        try:
            self.sendDtmf(prm)
        except pj.Error as exc:
            raise RuntimeError(exc.info()) from None

    def transfer(self, uri: str) -> None:
        """Blind transfer: REFER the far end to `uri`; progress comes as on_transfer_status."""
        if not self._usable():
            raise RuntimeError("the call is not active")
        try:
            self.xfer(uri, pj.CallOpParam(True))
        except pj.Error as exc:
            raise RuntimeError(exc.info()) from None

    def transfer_replacing(self, other: SipCall) -> None:
        """Attended transfer: REFER the far end to `other`'s far end, to replace `other`.

        The Refer-To is the far end's Contact, not the number pjsua's xferReplaces puts
        there: the INVITE with Replaces must reach the very UA that holds `other`'s dialog,
        and a number would be routed to whichever PSTN channel is free (RFC 5589, 7.3)."""
        if not (self._usable() and other._usable()):
            raise RuntimeError("both calls must be active")
        uri = uri_of(other.getInfo().remoteContact).split(";", 1)[0]
        if not uri or other.dialog_ids is None:
            raise RuntimeError("the consultation call must be one this party placed, and answered")
        call_id, local_tag, remote_tag = other.dialog_ids
        replaces = f"{call_id};to-tag={remote_tag};from-tag={local_tag}"
        try:
            self.xfer(f"<{uri}?Replaces={quote(replaces, safe='')}>", pj.CallOpParam(True))
        except pj.Error as exc:
            raise RuntimeError(exc.info()) from None

    def hold(self) -> None:
        """re-INVITE with a=sendonly."""
        if self._usable():
            try:
                self.setHold(pj.CallOpParam(True))
            except pj.Error as exc:
                raise RuntimeError(exc.info()) from None

    def unhold(self) -> None:
        """re-INVITE with a=sendrecv."""
        if self._usable():
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            try:
                self.reinvite(prm)
            except pj.Error as exc:
                raise RuntimeError(exc.info()) from None

    def remote_rtp_address(self) -> str | None:
        """Where the audio stream sends its RTP ("127.0.0.4:30000"), while there is one."""
        if not self._usable():
            return None
        try:
            info = self.getInfo()  # keep it referenced: its media vector dies with it
            index = next(i for i, m in enumerate(info.media) if m.type == pj.PJMEDIA_TYPE_AUDIO)
            return str(self.getStreamInfo(index).remoteRtpAddress)
        except (StopIteration, pj.Error):
            return None

    def rx_packets(self) -> int | None:
        """RTP packets received on the audio stream so far; None without an audio stream."""
        if not self._usable():
            return None
        try:
            info = self.getInfo()  # keep it referenced: its media vector dies with it
            index = next(i for i, m in enumerate(info.media) if m.type == pj.PJMEDIA_TYPE_AUDIO)
            return int(self.getStreamStat(index).rtcp.rxStat.pkt)
        except (StopIteration, pj.Error):
            return None

    def audio(self) -> pj.AudioMedia | None:
        if not self._usable():
            return None
        try:
            return self.getAudioMedia(-1)
        except pj.Error:
            return None


_PJMEDIA_DIR_ENCODING_DECODING = 3


def _pause_stream(stream: int, party: str) -> None:
    """Pause a pjmedia audio stream both ways: it sends no RTP (nor RTCP, which it sends only
    while sending or receiving)."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    lib.pjmedia_stream_pause.argtypes = [ctypes.c_void_p, ctypes.c_int]
    status = lib.pjmedia_stream_pause(stream, _PJMEDIA_DIR_ENCODING_DECODING)
    if status != 0:
        log.warning("%s: pjsua's audio stream could not be paused (pj_status %d)", party, status)


def _op_param(
    code: int = 0, reason: str = "", headers: dict[str, str] | None = None, defaults: bool = False
) -> pj.CallOpParam:
    prm = pj.CallOpParam(defaults)
    prm.statusCode = code
    if reason:
        prm.reason = reason
    for name, value in (headers or {}).items():
        hdr = pj.SipHeader()
        hdr.hName, hdr.hValue = name, value
        prm.txOption.headers.append(hdr)
    return prm


#: The Reason cause (a SIP code, RFC 3326) of a BYE sent because the far end's RTP stopped,
#: and the code of the FINISH the client gets for it: 408 Request Timeout.
MEDIA_TIMEOUT_CAUSE = 408


class MediaWatchdog:
    """Ends a call whose far end went silent: no RTP for `timeout` seconds (not counting
    time on hold) means the other party is gone, SIP or not."""

    def __init__(
        self,
        call: SipCall,
        on_silence: Callable[[SipCall], None],
        timeout: float,
        tasks: Tasks,
        received: Callable[[], int | None] | None = None,
    ) -> None:
        """`received`: the count of RTP packets from the far end, the call's audio stream's
        (rx_packets) unless another socket takes its media (the gateway's passthrough)."""
        self.call = call
        self.received = received or call.rx_packets
        self.on_silence = on_silence
        self.timeout = timeout
        self.paused = False
        self.task = tasks.start(self._watch(), "watching the call's RTP")

    async def _watch(self) -> None:
        last = self.received()
        quiet_since = asyncio.get_running_loop().time()
        while self.call.alive:
            await asyncio.sleep(0.5)
            now = asyncio.get_running_loop().time()
            count = self.received()
            if count is None:
                return
            if count != last or self.paused:
                last, quiet_since = count, now
            elif now - quiet_since >= self.timeout:
                self.on_silence(self.call)
                return

    def stop(self) -> None:
        self.task.cancel()


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_long)]


class _PjFrame(ctypes.Structure):  # pjmedia_frame
    _fields_ = [
        ("type", ctypes.c_int),
        ("buf", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("timestamp", ctypes.c_uint64),
        ("bit_info", ctypes.c_uint32),
    ]


class _PjCodecOp(ctypes.Structure):  # pjmedia_codec_op: function pointers, in order
    _fields_ = [
        (n, ctypes.c_void_p) for n in ("init", "open", "close", "modify", "parse", "encode", "decode")
    ]


class _PjCodec(ctypes.Structure):  # pjmedia_codec
    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("codec_data", ctypes.c_void_p),
        ("factory", ctypes.c_void_p),
        ("op", ctypes.POINTER(_PjCodecOp)),
    ]


#: Methods that have a meaning only inside a dialog or a transaction. One that reaches no
#: module of pjsua matches none here: 481 (RFC 3261 sections 9.2 and 15.1.2 for CANCEL and
#: BYE, 12.2.2 for any request; RFC 6086 section 4.2: INFO is sent only inside an invite
#: dialog usage).
_DIALOG_METHODS = frozenset({"BYE", "CANCEL", "PRACK", "UPDATE", "INFO", "NOTIFY"})


def unhandled_answer(method: str) -> int | None:
    """The status code for a request no module of pjsua took; None for ACK (never answered).

    RFC 3261 section 8.2.1: a method the UAS recognises but does not support gets 405 with
    an Allow header, a method it does not recognise 501 (section 21.5.2)."""
    if method == "ACK":
        return None
    if method in _DIALOG_METHODS:
        return 481
    if method == "REFER":  # outside a call: a transfer this party declines (RFC 3515 2.4.2)
        return 603
    return 405 if method in METHODS else 501


class _PjsipModule(ctypes.Structure):  # pjsip_module
    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        *((n, ctypes.c_void_p) for n in ("load", "start", "stop", "unload")),
        ("on_rx_request", ctypes.c_void_p),
        *(
            (n, ctypes.c_void_p)
            for n in ("on_rx_response", "on_tx_request", "on_tx_response", "on_tsx_state")
        ),
    ]


class _RxData(ctypes.Structure):  # pjsip_rx_data up to msg_info.msg (PJSIP_MAX_PKT_LEN 4000)
    _fields_ = [
        ("pool", ctypes.c_void_p),
        ("transport", ctypes.c_void_p),
        ("tp_data", ctypes.c_void_p),
        ("op_key", ctypes.c_void_p * 35),  # pj_ioqueue_op_key_t (34 pointers), then the rdata
        ("timestamp", ctypes.c_long * 2),
        ("packet", ctypes.c_char * 4000),
        ("zero", ctypes.c_uint32),
        ("len", ctypes.c_ssize_t),
        ("src_addr", ctypes.c_uint32 * 7),  # pj_sockaddr: 28 bytes, 4-aligned
        ("src_addr_len", ctypes.c_int),
        ("src_name", ctypes.c_char * 46),
        ("src_port", ctypes.c_int),
        ("msg_buf", ctypes.c_void_p),
        ("msg_len", ctypes.c_int),
        ("msg", ctypes.c_void_p),
    ]


class _PjsipMethod(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int), ("name", _PjStr)]


class _PjsipMsg(ctypes.Structure):  # pjsip_msg up to line.req.method
    _fields_ = [("type", ctypes.c_int), ("method", _PjsipMethod)]


class _DroppedData(ctypes.Structure):  # pjsip_tp_dropped_data
    _fields_ = [
        ("tp", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("status", ctypes.c_int),
    ]


_OnRxRequest = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_OnDropped = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DroppedData))
_PJSIP_MOD_PRIORITY_UA_PROXY_LAYER = 32  # mod-ua: requests inside a dialog
_PJSIP_MOD_PRIORITY_APPLICATION = 64  # pjsua's own modules: mod-pjsua, options, im, presence
_PJSIP_REQUEST_MSG = 0
_PJ_AF_INET = 2  # Linux's AF_INET, which pjlib uses
_PJ_EPENDING = 70002  # pjsip_endpt_send_raw: queued, sent when the socket is ready


def _rx_data(address: int) -> _RxData | None:
    """The pjsip_rx_data at `address` when it looks like the 2.15.1 layout (its message
    buffer is its own packet buffer, as for every UDP datagram); None, and nothing more of it
    read, when it does not."""
    rdata = _RxData.from_address(address)
    packet = ctypes.addressof(rdata) + _RxData.packet.offset
    if rdata.msg_buf != packet or not 0 < rdata.msg_len <= _RxData.packet.size:
        return None
    return rdata


def _request_method(address: int) -> tuple[str, bytes, str] | None:
    """(method, the whole datagram, "host:port" of the sender) of the request in the
    pjsip_rx_data at `address`; None when the struct does not look as expected."""
    rdata = _rx_data(address)
    if rdata is None or not rdata.msg:
        return None
    msg = _PjsipMsg.from_address(rdata.msg)
    if msg.type != _PJSIP_REQUEST_MSG or not 0 < msg.method.name.slen <= rdata.msg_len:
        return None
    method = ctypes.string_at(msg.method.name.ptr, msg.method.name.slen)
    raw = ctypes.string_at(ctypes.addressof(rdata) + _RxData.packet.offset, rdata.msg_len)
    if not raw.startswith(method + b" "):
        return None
    return method.decode("latin-1"), raw, f"{rdata.src_name.decode('latin-1')}:{rdata.src_port}"


class RequestChecks:
    """Answers what pjsip and pjsua leave unanswered or take though malformed, through
    pjsip's own hooks (two modules and the transport manager's dropped-data callback), all
    run on pjsua's thread and answering statelessly:

    * before pjsua's modules: a request RFC 3261/4475 says to refuse that pjsip parses
      (a CSeq of another method, two Content-Lengths, a body shorter than its
      Content-Length: 400; a Require option pjsua does not support: 420);
    * after them: a request none of them took (see unhandled_answer), which pjsip only
      logs ("dropped/unhandled by any modules");
    * a request pjsip cannot parse, which it drops with a log line (lab.sip.badrequest).

    Without an answer the sender retransmits for 32 s and learns nothing.
    """

    def __init__(self, party: str) -> None:
        self.party = party
        self.answered: dict[int, int] = {}  # status code -> how many, for tests and the log
        self._warned = False
        lib = self._lib = ctypes.CDLL(pj._pjsua2.__file__)
        lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
        lib.pjsip_endpt_get_tpmgr.restype = ctypes.c_void_p
        lib.pjsip_endpt_get_tpmgr.argtypes = [ctypes.c_void_p]
        lib.pjsip_endpt_get_capability.restype = ctypes.c_void_p
        lib.pjsip_endpt_get_capability.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.pjsip_hdr_clone.restype = ctypes.c_void_p
        lib.pjsip_hdr_clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pjsip_hdr_print_on.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.pjsip_generic_string_hdr_create.restype = ctypes.c_void_p
        lib.pjsip_generic_string_hdr_create.argtypes = [ctypes.c_void_p] * 3
        lib.pj_list_insert_before.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pjsua_pool_create.restype = ctypes.c_void_p
        lib.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
        lib.pj_pool_release.argtypes = [ctypes.c_void_p]
        lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pjsip_endpt_respond_stateless.argtypes = (
            [ctypes.c_void_p] * 2 + [ctypes.c_int] + [ctypes.c_void_p] * 3
        )
        lib.pjsip_endpt_send_raw.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.pjsip_tpmgr_set_drop_data_cb.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._endpt = lib.pjsua_get_pjsip_endpt()
        self.allow = self._capability(pj.PJSIP_H_ALLOW)
        self.supported = {o.strip().lower() for o in self._capability(pj.PJSIP_H_SUPPORTED).split(",")}
        # The Allow header pjsua answers OPTIONS with, as the one header list the 405s carry.
        self._pool = lib.pjsua_pool_create(b"unhandled", 1000, 1000)
        self._allow_list = self._header_list()
        allow = lib.pjsip_endpt_get_capability(self._endpt, pj.PJSIP_H_ALLOW, None)
        lib.pj_list_insert_before(self._allow_list, lib.pjsip_hdr_clone(self._pool, allow))
        self._callbacks = (
            _OnRxRequest(self._on_new_request),
            _OnRxRequest(self._on_unhandled),
            _OnDropped(self._on_dropped),
        )
        self._modules = (
            self._module(b"mod-calllab-checks", _PJSIP_MOD_PRIORITY_UA_PROXY_LAYER - 1, self._callbacks[0]),
            self._module(b"mod-calllab-unhandled", _PJSIP_MOD_PRIORITY_APPLICATION + 32, self._callbacks[1]),
        )
        tpmgr = lib.pjsip_endpt_get_tpmgr(self._endpt)
        lib.pjsip_tpmgr_set_drop_data_cb(tpmgr, ctypes.cast(self._callbacks[2], ctypes.c_void_p))

    def _capability(self, header: int) -> str:
        """The value of one of pjsip's capability headers (Allow, Supported)."""
        hdr = self._lib.pjsip_endpt_get_capability(self._endpt, header, None)
        if not hdr:
            return ""
        text = ctypes.create_string_buffer(1000)
        size = self._lib.pjsip_hdr_print_on(hdr, text, len(text))
        return text.raw[: max(size, 0)].decode("latin-1").partition(":")[2].strip()

    @staticmethod
    def _header_list() -> ctypes.Array[ctypes.c_void_p]:
        head = (ctypes.c_void_p * 2)()  # a pj_list head: prev, next, pointing to itself
        head[0] = head[1] = ctypes.addressof(head)
        return head

    def _module(self, name: bytes, priority: int, on_rx_request: ctypes._CFunctionType) -> _PjsipModule:
        module = _PjsipModule(
            name=_PjStr(name, len(name)),
            id=-1,
            priority=priority,
            on_rx_request=ctypes.cast(on_rx_request, ctypes.c_void_p),
        )
        status = self._lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(module))
        if status != 0:
            raise RuntimeError(f"{self.party}: pjsip refused the module {name.decode()} ({status})")
        return module

    def _request(self, rdata: int) -> tuple[str, bytes, str] | None:
        request = _request_method(rdata)
        if request is None and not self._warned:
            self._warned = True
            log.error("%s: pjsip_rx_data is not laid out as expected; bad requests go unanswered", self.party)
        return request

    def _respond(self, rdata: int, request: tuple[str, bytes, str], code: int, reason: str = "") -> int:
        method, _, source = request
        headers = None
        pool = None
        if code == 405:
            headers = ctypes.addressof(self._allow_list)
        elif code == 420:
            options = ", ".join(badrequest.unsupported(request[1], self.supported))
            pool = self._lib.pjsua_pool_create(b"420", 500, 500)
            name, value = b"Unsupported", options.encode("latin-1")
            names = _PjStr(name, len(name)), _PjStr(value, len(value))
            hdr = self._lib.pjsip_generic_string_hdr_create(
                pool, ctypes.byref(names[0]), ctypes.byref(names[1])
            )
            head = self._header_list()
            self._lib.pj_list_insert_before(head, hdr)
            headers = ctypes.addressof(head)
        text = reason.encode("latin-1")
        phrase = _PjStr(text, len(text))
        status = self._lib.pjsip_endpt_respond_stateless(
            self._endpt, rdata, code, ctypes.byref(phrase) if text else None, headers, None
        )
        if pool:
            self._lib.pj_pool_release(pool)  # respond_stateless cloned the header
        if status != 0:
            log.warning(
                "%s: answering %s from %s with %d failed (%d)", self.party, method, source, code, status
            )
            return 0
        self.answered[code] = self.answered.get(code, 0) + 1
        log.info("%s: %s from %s: answered %d %s", self.party, method, source, code, reason)
        return 1

    def _on_new_request(self, rdata: int) -> int:
        try:
            request = self._request(rdata)
            if request is None or request[0] == "ACK":
                return 0
            refusal = badrequest.problem(request[1])
            if refusal is not None:
                return self._respond(rdata, request, *refusal)
            if badrequest.unsupported(request[1], self.supported):
                return self._respond(rdata, request, 420, "Bad Extension")
            return 0
        except Exception:  # an exception cannot cross into pjsip
            log.exception("%s: checking a request failed", self.party)
            return 0

    def _on_unhandled(self, rdata: int) -> int:
        try:
            request = self._request(rdata)
            code = unhandled_answer(request[0]) if request is not None else None
            if request is None or code is None:
                return 0
            return self._respond(rdata, request, code)
        except Exception:
            log.exception("%s: answering an unhandled request failed", self.party)
            return 0

    def _on_dropped(self, dropped: ctypes._Pointer[_DroppedData]) -> None:
        try:
            data = dropped.contents
            # pjsip 2.15.1 passes the start of the message in the rdata's packet buffer (the
            # datagram's start, on the lab's one transport, UDP), or NULL: the rdata is just
            # before it, and _rx_data checks that it is.
            rdata = _rx_data(data.data - _RxData.packet.offset) if data.data else None
            if rdata is None or data.len > rdata.msg_len:
                return
            answer = badrequest.answer_unparsable(ctypes.string_at(data.data, data.len))
            if answer is None:
                return
            response, port = answer
            host = rdata.src_name.decode("latin-1")
            to = (port or rdata.src_port).to_bytes(2, "big")
            address = _PJ_AF_INET.to_bytes(2, "little") + to + socket.inet_aton(host) + bytes(8)
            status = self._lib.pjsip_endpt_send_raw(
                self._endpt,
                pj.PJSIP_TRANSPORT_UDP,
                None,
                response,
                len(response),
                address,
                len(address),
                None,
                None,
            )
            code = int(response.split(b" ", 2)[1])
            if status in (0, _PJ_EPENDING):
                self.answered[code] = self.answered.get(code, 0) + 1
            log.info("%s: a request pjsip could not parse from %s: answered %d", self.party, host, code)
        except Exception:
            log.exception("%s: answering an unparsable request failed", self.party)


_CodecFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_CodecIo = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_PjFrame), ctypes.c_uint, ctypes.POINTER(_PjFrame)
)
#: pjmedia_codec_param: clock rate at byte 0, frame time (ms, 16 bits) at 20, and the VAD
#: bit as bit 0 of byte 41 (PJSIP 2.15, x86-64; tests/test_ceiling.py checks the result).
_PARAM_BYTES, _PTIME_AT, _VAD_AT = 512, 20, 41


def codec_round_trip(codec: str, pcm: bytes) -> bytes:
    """16-bit mono PCM at the codec's clock rate, encoded and decoded frame by frame by
    pjmedia's own codec, as the lab's calls use it (settings of _media_config, VAD off):
    what a perfect network leaves of the audio. pjsua2 has no codec API, so this reaches
    pjmedia's C functions in the wheel's library.

    It creates this process's one Endpoint (and never destroys it): for a process of its
    own (python -m lab.sip.transcode), never a party's."""
    if SipEndpoint._created:
        raise RuntimeError("one pjsua2 Endpoint per process: transcode in a process of its own")
    SipEndpoint._created = True
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    _media_config(cfg.medConfig)
    ep.libInit(cfg)  # registers the codecs; no transport, no start: nothing goes on the wire
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    lib.pjsua_get_pjmedia_endpt.restype = ctypes.c_void_p
    lib.pjmedia_endpt_get_codec_mgr.restype = ctypes.c_void_p
    lib.pjmedia_endpt_get_codec_mgr.argtypes = [ctypes.c_void_p]
    lib.pjmedia_codec_mgr_find_codecs_by_id.argtypes = [ctypes.c_void_p] * 5
    lib.pjmedia_codec_mgr_get_default_param.argtypes = [ctypes.c_void_p] * 3
    lib.pjmedia_codec_mgr_alloc_codec.argtypes = [ctypes.c_void_p] * 3
    lib.pjsua_pool_create.restype = ctypes.c_void_p
    lib.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
    manager = lib.pjmedia_endpt_get_codec_mgr(lib.pjsua_get_pjmedia_endpt())
    codec_id = CODEC_IDS[codec.upper()].encode()
    name, count, info = _PjStr(codec_id, len(codec_id)), ctypes.c_uint(1), ctypes.c_void_p()
    param = ctypes.create_string_buffer(_PARAM_BYTES)
    found = lib.pjmedia_codec_mgr_find_codecs_by_id(
        manager, ctypes.byref(name), ctypes.byref(count), ctypes.byref(info), None
    )
    if found != 0 or count.value != 1 or lib.pjmedia_codec_mgr_get_default_param(manager, info, param):
        raise RuntimeError(f"pjmedia has no codec {codec_id.decode()}")
    param[_VAD_AT] = bytes([param.raw[_VAD_AT] & 0xFE])
    handle = ctypes.POINTER(_PjCodec)()
    pool = lib.pjsua_pool_create(b"transcode", 4000, 4000)
    if lib.pjmedia_codec_mgr_alloc_codec(manager, info, ctypes.byref(handle)):
        raise RuntimeError(f"pjmedia could not make a {codec_id.decode()} codec")
    op = handle.contents.op.contents
    if _CodecFn(op.init)(handle, pool) or _CodecFn(op.open)(handle, param):
        raise RuntimeError(f"pjmedia could not open its {codec_id.decode()} codec")
    encode, decode = _CodecIo(op.encode), _CodecIo(op.decode)
    rate = int.from_bytes(param.raw[0:4], "little")
    frame_bytes = rate * int.from_bytes(param.raw[_PTIME_AT : _PTIME_AT + 2], "little") // 1000 * 2
    source, coded, out = (ctypes.create_string_buffer(n) for n in (frame_bytes, 2048, 2 * frame_bytes))
    decoded = []
    for start in range(0, len(pcm) - frame_bytes + 1, frame_bytes):
        ctypes.memmove(source, pcm[start : start + frame_bytes], frame_bytes)
        audio = _PjFrame(1, ctypes.addressof(source), frame_bytes, start // 2, 0)
        packet = _PjFrame(0, ctypes.addressof(coded), 0, 0, 0)
        if encode(handle, ctypes.byref(audio), len(coded), ctypes.byref(packet)):
            raise RuntimeError(f"{codec_id.decode()}: encoding failed")
        packet.type = 1
        heard = _PjFrame(0, ctypes.addressof(out), 0, 0, 0)
        if decode(handle, ctypes.byref(packet), len(out), ctypes.byref(heard)):
            raise RuntimeError(f"{codec_id.decode()}: decoding failed")
        decoded.append(out.raw[: heard.size])
    return b"".join(decoded)


def connect(a: pj.AudioMedia, b: pj.AudioMedia) -> None:
    """Audio both ways between two conference-bridge ports."""
    a.startTransmit(b)
    b.startTransmit(a)


class WavPlayer:
    """A looping WAV player; keep it referenced while it plays (else: silence)."""

    def __init__(self, path: Path) -> None:
        self.port = pj.AudioMediaPlayer()
        self.port.createPlayer(str(path), 0)


class WavRecorder:
    """Records what it is fed into a WAV file, silence while nothing is (a call on hold): the
    file keeps the call's timeline from the recorder's start to close()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port: pj.AudioMediaRecorder | None = pj.AudioMediaRecorder()
        self.port.createRecorder(str(path))
        # The bridge writes a frame to a recorder only while some port transmits to it; a
        # call's stream stops while it is held (its port is replaced at every re-INVITE).
        # A tone generator playing nothing gives silence on every tick of the bridge.
        self._ticks: pj.ToneGenerator | None = pj.ToneGenerator()
        self._ticks.createToneGenerator(CLOCK_RATE, 1)
        self._ticks.startTransmit(self.port)

    async def close(self, timeout: float = 2.0) -> bool:
        """Drop the recorder and wait until its file is final; False if it never was.

        PJSIP 2.14+ removes conference ports on the bridge's next clock tick, so the WAV
        header is written some milliseconds after the last reference goes.
        """
        self.port = self._ticks = None
        gc.collect()
        deadline = asyncio.get_running_loop().time() + timeout
        while not wav_is_final(self.path):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


def _vector_bytes_slow(vec: pj.ByteVector) -> bytes:
    return bytes(vec)  # SWIG walks the vector element by element: ~150 us a frame


def _vector_bytes_fast(vec: pj.ByteVector) -> bytes:
    # A std::vector starts with its data pointer (libstdc++): read the bytes in one go, ~2 us.
    data = ctypes.c_void_p.from_address(int(vec.this)).value
    return ctypes.string_at(data, len(vec)) if data else b""


def _pick_vector_reader() -> Callable[[pj.ByteVector], bytes]:
    probe = bytes(range(256))
    return _vector_bytes_fast if _vector_bytes_fast(pj.ByteVector(probe)) == probe else _vector_bytes_slow


vector_bytes = _pick_vector_reader()


def _no_frame() -> bytes | None:
    return None


def _drop_frame(pcm: bytes) -> None:
    pass


def frame_bytes(clock_rate: int) -> int:
    """The size of one 20 ms frame of 16-bit mono PCM at `clock_rate`."""
    return clock_rate * FRAME_MS // 1000 * 2


class FramePort(pj.AudioMediaPort):  # type: ignore[misc]
    """A conference-bridge port fed and drained by Python (16-bit mono PCM frames).

    Both callbacks run on the conference bridge clock thread: keep them short.

    A port is never destroyed while the process runs: pjsua removes a conference port on
    the bridge's next clock tick and calls it until then, so a port dropped at the end of a
    call could be called after it was freed (the gateway died of it). Ports are lent to a
    call with lend() and reused, once that call is over, after give_back().

    A port's frames are 20 ms at its `clock_rate`; the bridge resamples a port whose rate
    is not its own.
    """

    _made: list[FramePort] = []  # every port of this process, until SipEndpoint.shutdown

    def __init__(self, clock_rate: int) -> None:
        super().__init__()
        self.clock_rate = clock_rate
        self.frame_bytes = frame_bytes(clock_rate)
        self._pull: Callable[[], bytes | None] = _no_frame
        self._push: Callable[[bytes], None] = _drop_frame
        self.call: SipCall | None = None  # the call it serves or last served
        self.lent = False
        fmt = pj.MediaFormatAudio()
        fmt.type = pj.PJMEDIA_TYPE_AUDIO
        fmt.clockRate = clock_rate
        fmt.channelCount = 1
        fmt.bitsPerSample = 16
        fmt.frameTimeUsec = FRAME_MS * 1000
        self.createPort(f"frames{len(FramePort._made)}", fmt)
        FramePort._made.append(self)

    @classmethod
    def lend(
        cls,
        call: SipCall,
        clock_rate: int,
        pull: Callable[[], bytes | None],
        push: Callable[[bytes], None],
    ) -> FramePort:
        """A port at `clock_rate` for `call`: one given back whose call is over (so no link
        to it is left in the bridge), else a new one."""
        idle = (
            p
            for p in cls._made
            if not p.lent and p.clock_rate == clock_rate and (p.call is None or not p.call.alive)
        )
        port = next(idle, None) or cls(clock_rate)
        port.call, port.lent = call, True
        port._pull, port._push = pull, push
        return port

    @classmethod
    def made(cls) -> int:
        return len(cls._made)

    def give_back(self) -> None:
        self._pull, self._push = _no_frame, _drop_frame
        self.lent = False

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        data = self._pull()
        if data is None:
            frame.type = pj.PJMEDIA_FRAME_TYPE_NONE
            return
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self._push(vector_bytes(frame.buf))


__all__ = [
    "MAX_ACCOUNTS",
    "MAX_CALLS",
    "CallSnapshot",
    "FramePort",
    "PjsuaAccount",
    "SipCall",
    "SipEndpoint",
    "WavPlayer",
    "WavRecorder",
    "connect",
    "frame_bytes",
]
