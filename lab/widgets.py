"""The lab in Jupyter: the seed's Phone UI, and a dashboard that draws each call.

Widgets never block the kernel: a click schedules a coroutine on the kernel's own asyncio
loop. Every action a click triggers is also a method (log_in, voice_call, press, hang_up,
...) so notebooks and tests can drive the very same objects. The password field is cleared
after login so no saved notebook keeps it.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w
from IPython.display import display

from lab import plots
from lab.analysis import pcap
from lab.analysis.columns import BRIEF, hop_table, network_table, pesq_table, stream_table
from lab.analysis.live import LiveCall
from lab.analysis.model import CallModel, lab_party_names
from lab.client import CALL_STATUS, Call, LoginFailed, Session
from lab.config import LabConfig, PhonePolicy, SipAccount
from lab.network.impairment import PROFILES, ImpairmentError
from lab.network.legs import LEGS, LegImpairment, plan
from lab.numbers import InvalidNumber, normalize_number
from lab.phonecontrol import AnswerCall, Command, HangupCall, PhoneControl, RejectCall, SetPolicy, as_dict
from lab.report import html_table
from lab.report import write as write_report
from lab.scenario import CallResult, LabCall, consult
from lab.signaling import status_text
from lab.sip.codecs import LEG_CODECS
from lab.webrtc import CODECS as BROWSER_CODECS

log = logging.getLogger(__name__)
KEYS = "123456789*0#"
LIVE_REFRESH_S = 1.0
REMOTE_VIDEO_S = 0.5  # s between pictures of the far end's camera in the Phone widget


class KernelLoop:
    """Runs a widget's work on the kernel's own asyncio loop.

    ipykernel 7 may call button handlers from another thread; work started there would
    bind the call's asyncio objects to the wrong loop. So every widget remembers the loop
    it was created on (a notebook cell's) and hands its work to it."""

    def __init__(self) -> None:
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            try:
                self.loop = asyncio.get_event_loop_policy().get_event_loop()
            except RuntimeError:  # an asyncio.run() in this thread ended and left it none
                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, work: Callable[[], Awaitable[object]], on_error: Callable[[Exception], None]) -> None:
        async def guarded() -> None:
            try:
                await work()
            except Exception as exc:  # a widget must not die silently
                log.exception("widget action failed")
                on_error(exc)

        def start() -> None:
            task = asyncio.ensure_future(guarded())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        try:
            on_own_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_own_loop = False
        if on_own_loop:
            start()
        else:
            self.loop.call_soon_threadsafe(start)


@dataclass(frozen=True)
class PhoneState:
    """What the Phone's buttons depend on."""

    logged_in: bool = False
    in_call: bool = False  # dialling, ringing, talking or held
    talking: bool = False  # established or held: keys, Hold, Transfer, Consult work
    on_hold: bool = False
    consulting: bool = False  # an attended transfer's consultation call is up


class PhoneForm:
    """The seed's Phone UI as widgets, and nothing else: the login form (login, auth name,
    password, domain, outbound proxy, port), the number, Voice call / Video call, the keypad,
    Hangup, Hold, the transfer field with Consult and Transfer, the status line and the
    players; and the lab's network per leg (a profile each, perfect by default, and
    `--impair` specs) that the next call crosses. PhoneWidget gives the buttons their work;
    enable() says which a state allows."""

    def __init__(self, defaults: SipAccount) -> None:
        layout = w.Layout(width="320px")
        self.login = w.Text(value=defaults.login, description="login", layout=layout)
        self.auth_name = w.Text(value=defaults.auth_name, description="auth. name", layout=layout)
        self.password = w.Password(
            value="",
            placeholder="the lab account's: filled in for you",
            description="password",
            layout=layout,
        )
        self.domain = w.Text(value=defaults.domain, description="domain", layout=layout)
        self.outbound_proxy = w.Text(
            value=defaults.outbound_proxy, description="outbound proxy", layout=layout
        )
        self.port = w.BoundedIntText(value=defaults.port, min=1, max=65535, description="port", layout=layout)
        self.login_button = w.Button(description="Log in", button_style="primary")
        self.number = w.Text(placeholder="Enter your number here", description="number", layout=layout)
        self.voice_button = w.Button(description="Voice call", button_style="success", icon="phone")
        self.video_button = w.Button(description="Video call", icon="video-camera")
        self.keys = {k: w.Button(description=k, layout=w.Layout(width="48px")) for k in KEYS}
        self.hangup_button = w.Button(description="Hangup", button_style="danger")
        self.hold_button = w.Button(description="Hold")
        self.transfer_target = w.Text(placeholder="transfer to", layout=w.Layout(width="160px"))
        self.transfer_button = w.Button(description="Transfer")
        self.consult_button = w.Button(description="Consult")
        self.networks = {
            leg: w.Dropdown(options=list(PROFILES), value="perfect", description=f"{leg} leg", layout=layout)
            for leg in LEGS
        }
        #: each leg's codec for the next call; "default": the lab's (SIP PCMU, mobile GSM)
        self.codecs = {
            "browser": w.Dropdown(options=list(BROWSER_CODECS), value="opus", description="browser codec"),
            "sip": w.Dropdown(
                options=["default", *LEG_CODECS["sip"]], value="default", description="SIP codec"
            ),
            "mobile": w.Dropdown(
                options=["default", *LEG_CODECS["mobile"]], value="default", description="mobile codec"
            ),
        }
        self.impair = w.Text(
            placeholder="LEG:DIRECTION:SPEC; ... e.g. mobile:both:loss=5%,burst=3",
            description="impair",
            layout=w.Layout(width="480px"),
        )
        self.status = w.HTML("<b>not logged in</b>")
        self.event = w.HTML("")  # what the gateway said besides statuses: what became of the video
        self.remote_video = w.Image(format="jpeg", layout=w.Layout(width="320px", display="none"))
        self.players = w.VBox()
        self.history: list[str] = []  # every line the status showed
        keypad = w.GridBox(list(self.keys.values()), layout=w.Layout(grid_template_columns="repeat(3, 52px)"))
        form = w.VBox(
            [
                self.login,
                self.auth_name,
                self.password,
                self.domain,
                self.outbound_proxy,
                self.port,
                self.login_button,
            ]
        )
        dial = w.VBox(
            [
                self.number,
                w.HBox([self.voice_button, self.video_button]),
                keypad,
                w.HBox([self.hangup_button, self.hold_button]),
                w.HBox([self.transfer_target, self.consult_button, self.transfer_button]),
            ]
        )
        network = w.VBox(
            [
                w.HTML("<b>Network and codecs</b> (for the next call)"),
                *self.networks.values(),
                self.impair,
                w.HBox(list(self.codecs.values())),
            ]
        )
        self.widget = w.VBox(
            [
                w.HTML("<h3>Phone</h3>"),
                w.HBox([form, dial]),
                network,
                self.status,
                self.event,
                self.remote_video,
                self.players,
            ]
        )
        self.enable(PhoneState())

    def enable(self, state: PhoneState) -> None:
        """Each button is usable only when it makes sense."""
        self.login_button.disabled = state.in_call
        self.voice_button.disabled = self.video_button.disabled = not state.logged_in or state.in_call
        self.hangup_button.disabled = not state.in_call
        for button in self.keys.values():
            button.disabled = not state.talking
        self.hold_button.disabled = self.transfer_button.disabled = not state.talking
        self.hold_button.description = "Unhold" if state.on_hold else "Hold"
        self.consult_button.disabled = not state.talking or state.consulting
        for choice in (*self.networks.values(), self.impair, *self.codecs.values()):
            choice.disabled = state.in_call  # chosen when the call is dialled

    def say(self, text: str, error: bool = False) -> None:
        self.history.append(text)
        colour = "#c62828" if error else "#1b5e20"
        self.status.value = f"<b style='color:{colour}'>{html.escape(text)}</b>"

    def note(self, text: str) -> None:
        self.event.value = f"<i>{html.escape(text)}</i>" if text else ""

    def show_remote(self, jpeg: bytes | None) -> None:
        """The far end's camera: a JPEG picture, or None to hide it."""
        self.remote_video.value = jpeg or b""
        self.remote_video.layout.display = "" if jpeg else "none"

    def account(self, default_password: str) -> SipAccount:
        """The login form's account; an empty password field means the lab account's."""
        return SipAccount(
            login=self.login.value.strip(),
            auth_name=self.auth_name.value.strip() or self.login.value.strip(),
            password=self.password.value or default_password,
            domain=self.domain.value.strip(),
            outbound_proxy=self.outbound_proxy.value.strip(),
            port=int(self.port.value),
        )

    def impairments(self) -> tuple[LegImpairment, ...]:
        """The networks chosen, as `calllab call --network PROFILE@LEG --impair ...` takes
        them (the impair field's specs override a profile); ImpairmentError names what is wrong."""
        chosen = [f"{d.value}@{leg}" for leg, d in self.networks.items() if d.value != "perfect"]
        return plan(impair=[t.strip() for t in self.impair.value.split(";") if t.strip()], network=chosen)

    def leg_codec(self, leg: str) -> str | None:
        """The SIP or mobile leg's codec chosen, None for the lab's default."""
        value = str(self.codecs[leg].value)
        return None if value == "default" else value

    def show_recordings(self, audio: dict[str, str | None]) -> None:
        self.players.children = tuple(
            w.VBox([w.Label(name.replace("_", " ")), w.Audio.from_file(path, autoplay=False, loop=False)])
            for name, path in audio.items()
            if path
        )


class PhoneWidget:
    """The seed's Phone at work: log in, dial, the keypad's DTMF, Hangup, Hold and Transfer
    (alone blind; after Consult, which holds the call and calls the target, attended). Each
    button's work is a method here, so notebooks and tests drive the very same objects."""

    def __init__(self, cfg: LabConfig, *, dashboard: CallDashboard | None = None) -> None:
        self.cfg = cfg
        self.dashboard = dashboard
        self.form = PhoneForm(cfg.account())
        self.session: Session | None = None
        self.lab_call: LabCall | None = None
        self.consultation: LabCall | None = None  # the call an attended transfer goes to
        self.result: CallResult | None = None
        self.kernel = KernelLoop()
        form = self.form
        form.login_button.on_click(lambda _: self._run(self.log_in))
        form.voice_button.on_click(lambda _: self._run(self.voice_call))
        form.video_button.on_click(lambda _: self._run(self.video_call))
        form.hangup_button.on_click(lambda _: self._run(self.hang_up))
        form.hold_button.on_click(lambda _: self._run(self.toggle_hold))
        form.transfer_button.on_click(lambda _: self._run(self.transfer))
        form.consult_button.on_click(lambda _: self._run(self.consult))
        for key, button in form.keys.items():
            button.on_click(lambda _, k=key: self._run(lambda: self.press(k)))
        self.widget = form.widget

    def _ipython_display_(self) -> None:
        display(self.widget)

    # --- state --------------------------------------------------------------------------
    @property
    def call(self) -> Call | None:
        return self.lab_call.call if self.lab_call else None

    @property
    def in_call(self) -> bool:
        return self.call is not None and not self.call.status.final

    def state(self) -> PhoneState:
        status = self.call.status if self.call is not None else None
        return PhoneState(
            logged_in=self.session is not None,
            in_call=self.in_call,
            talking=self.in_call and status in (CALL_STATUS.ESTABLISHED, CALL_STATUS.HOLD),
            on_hold=status == CALL_STATUS.HOLD,
            consulting=self._consulting,
        )

    def _update_buttons(self) -> None:
        self.form.enable(self.state())

    def _say(self, text: str, error: bool = False) -> None:
        self.form.say(text, error)

    def _run(self, work: Callable[[], Awaitable[object]]) -> None:
        """A click's work, on the kernel's loop; errors go to the status line."""

        async def then_update() -> None:
            try:
                await work()
            finally:
                self._update_buttons()

        self.kernel.submit(then_update, lambda exc: self._say(f"error: {exc}", error=True))

    # --- actions (what each button does) --------------------------------------------------
    async def log_in(self) -> bool:
        if self.session is not None:
            await self.session.disconnect()
            self.session = None
        account = self.form.account(self.cfg.password)
        self.form.password.value = ""  # never left in the widget state a saved notebook keeps
        self._say(
            f"logging in as {account.login}@{account.domain} via {account.outbound_proxy}:{account.port}..."
        )
        session = Session(self.cfg.ws_url, account, host=self.cfg.browser.host)
        try:
            await session.connect()
        except LoginFailed as exc:
            self._say(f"login failed: {exc.code} {exc.reason}", error=True)
            return False
        finally:
            self._update_buttons()
        self.session = session
        self._say(f"logged in as {account.login}@{account.domain}")
        self._update_buttons()
        return True

    async def video_call(self, number: str | None = None, answer: PhonePolicy | None = None) -> Call | None:
        """Video call: voice_call offering the client's test-pattern camera too (VP8, H.264).
        A mobile phone declines the video and the call goes on as voice; the event line says so."""
        return await self._dial(number, answer, None, video=True)

    async def voice_call(
        self, number: str | None = None, answer: PhonePolicy | None = None, codec: str | None = None
    ) -> Call | None:
        """Dial (the number field unless given) through the networks and with the codecs
        the form chose (`codec` overrides the browser leg's), and return once it is
        answered or over."""
        return await self._dial(number, answer, codec, video=False)

    async def _dial(
        self, number: str | None, answer: PhonePolicy | None, codec: str | None, video: bool
    ) -> Call | None:
        if self.session is None:
            self._say("log in first", error=True)
            return None
        if number is not None:
            self.form.number.value = number
        try:
            dialled = normalize_number(self.form.number.value)
            impairments = self.form.impairments()
        except (InvalidNumber, ImpairmentError) as exc:
            self._say(str(exc), error=True)
            return None
        self.lab_call = LabCall(
            self.cfg,
            self.session,
            dialled,
            answer=answer,
            codec=codec or str(self.form.codecs["browser"].value),
            on_status=self._on_status,
            impairments=impairments,
            sip_codec=self.form.leg_codec("sip"),
            mobile_codec=self.form.leg_codec("mobile"),
            video=video,
        )
        self.lab_call.call.on_event(self._on_event)
        self.result = None
        self.form.players.children = ()
        self.form.note("")
        if self.dashboard is not None:
            self.dashboard.follow(
                f"Call {self.lab_call.call_id} to {dialled}", self.lab_call.capture_path, self.lab_call.over
            )
        await self.lab_call.start()
        if self.call is not None and self.call.status.final:
            await self._finish()
        return self.call

    @property
    def _consulting(self) -> bool:
        return self.consultation is not None and not self.consultation.call.status.final

    async def hang_up(self) -> None:
        if self.lab_call is None or not self.in_call:
            return
        if self._consulting:
            assert self.consultation is not None
            await self.consultation.hang_up()
        await self.lab_call.hang_up()
        await self._finish()

    async def press(self, key: str) -> None:
        """A keypad key: DTMF to the far end during the call."""
        if self.call is None or key not in KEYS:
            return
        await self.call.send_dtmf(key)
        self._say(f"sent DTMF {key}")

    async def toggle_hold(self) -> None:
        if self.call is None:
            return
        if self.call.status == CALL_STATUS.HOLD:
            await self.call.unhold()
        else:
            await self.call.hold()

    async def consult(self, target: str | None = None) -> Call | None:
        """Attended transfer, first step: hold the call and call the number in the transfer
        field (or `target`); Transfer then joins the two far ends."""
        if self.lab_call is None or self.call is None:
            return None
        if target is not None:
            self.form.transfer_target.value = target
        self._say(f"consulting {self.form.transfer_target.value.strip()}...")
        self.consultation = await consult(self.lab_call, self.form.transfer_target.value.strip())
        consulted = self.consultation.call
        self._say(f"consultation call: {status_text(consulted.status, consulted.sip_code, consulted.reason)}")
        self._update_buttons()
        return self.consultation.call

    async def transfer(self, target: str | None = None) -> None:
        """To the consultation call when there is one (attended: REFER with Replaces), else
        blind to the number in the transfer field (or `target`)."""
        if self.call is None:
            return
        if self.consultation is not None and self.consultation.call.status == CALL_STATUS.ESTABLISHED:
            await self.call.transfer(self.consultation.call)
            self._say(f"transferring to {self.consultation.number} (attended)...")
            return
        if target is not None:
            self.form.transfer_target.value = target
        await self.call.transfer(self.form.transfer_target.value.strip())
        self._say(f"transferring to {self.form.transfer_target.value.strip()}...")

    async def wait_until_over(self, timeout: float = 30.0) -> CallResult | None:
        """The call's result once it is over and filed; TimeoutError says where it stuck."""
        if self.lab_call is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                await self.lab_call.over.wait()
                await self._finish()
        except TimeoutError:
            stage = "filed" if self.lab_call.over.is_set() else "over"
            raise TimeoutError(f"phone widget: the call was not {stage} within {timeout:g} s") from None
        return self.result

    # --- events ---------------------------------------------------------------------------
    def _on_status(self, call: Call) -> None:
        self._say(
            status_text(call.status, call.sip_code, call.reason),
            error=call.status in (CALL_STATUS.FAILED, CALL_STATUS.BUSY),
        )
        self._update_buttons()
        if call.status.final:
            self._run(self._finish)

    def _on_event(self, call: Call, event: dict[str, Any]) -> None:
        if event["event"] == "video":
            self.form.note(f"video: {event['reason']}")
            if not event["declined"]:
                self._run(lambda: self._show_remote_video(call))

    async def _show_remote_video(self, call: Call) -> None:
        """The far end's camera as the client decodes it, a picture every REMOTE_VIDEO_S while
        the call lasts (a widget is no video player: pictures are what a kernel can send)."""
        while not call.status.final:
            frame = call.media.video_seen.last
            if frame is not None:
                picture = io.BytesIO()
                frame.to_image().save(picture, format="JPEG", quality=80)
                self.form.show_remote(picture.getvalue())
            await asyncio.sleep(REMOTE_VIDEO_S)
        self.form.show_remote(None)

    async def _finish(self) -> None:
        """The call's result, players and dashboard; LabCall.finish runs once however often
        this is awaited (the FINISH status and hang_up both get here)."""
        if self.lab_call is None:
            return
        lab_call = self.lab_call
        consultation, self.consultation = self.consultation, None
        if consultation is not None:
            if not consultation.call.status.final:  # it goes with the call it consulted for
                await consultation.hang_up()
            await consultation.finish()
        result = await lab_call.finish()
        if self.lab_call is not lab_call or self.result is result:
            return
        self.result = result
        self.form.show_recordings(result.audio)
        if self.dashboard is not None:
            self.dashboard.show_result(result)


class MobilePhoneWidget:
    """A phone of the lab, as its owner sees it: ringing with caller id, Answer / Reject /
    Hang up, the digits it received, and its answer policy."""

    POLICIES = ("after:1", "after:3", "manual", "busy", "reject", "never")

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.screen = w.HTML("<b>not connected</b>")
        self.digits = w.HTML("digits received: -")
        self.policy = w.Dropdown(options=self.POLICIES, value="after:1", description="answers")
        self.answer_button = w.Button(description="Answer", button_style="success", disabled=True)
        self.reject_button = w.Button(description="Reject", button_style="danger", disabled=True)
        self.hangup_button = w.Button(description="Hang up", disabled=True)
        self.events: list[dict[str, object]] = []
        self.state = "idle"  # idle, ringing, in call
        self.control = PhoneControl(cfg.phone_control_url)
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.kernel = KernelLoop()
        self.answer_button.on_click(lambda _: self._run(self.answer))
        self.reject_button.on_click(lambda _: self._run(self.reject))
        self.hangup_button.on_click(lambda _: self._run(self.hang_up))
        self.policy.observe(lambda change: self._run(lambda: self.set_policy(change["new"])), names="value")
        self.widget = w.VBox(
            [
                w.HTML(f"<h3>Mobile phone {html.escape(cfg.phone.host)}</h3>"),
                self.screen,
                w.HBox([self.answer_button, self.reject_button, self.hangup_button]),
                self.digits,
                self.policy,
            ]
        )

    def _ipython_display_(self) -> None:
        display(self.widget)

    def _run(self, work: Callable[[], Awaitable[object]]) -> None:
        def show(exc: Exception) -> None:
            self.screen.value = f"<b style='color:#c62828'>error: {html.escape(str(exc))}</b>"

        self.kernel.submit(work, show)

    async def connect(self, timeout: float = 5.0) -> MobilePhoneWidget:
        self._on_event(as_dict(await self.control.connect(timeout)))
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for event in self.control.events():
            self._on_event(as_dict(event))
        self.screen.value = "<b>phone disconnected</b>"

    def _on_event(self, event: dict[str, object]) -> None:
        self.events.append(event)
        kind = event.get("event")
        if kind == "hello":
            self.screen.value = "<b>idle</b>"
        elif kind == "incoming":
            self.state = "ringing"
            self.digits.value = "digits received: -"
            self.screen.value = (
                f"<b style='color:#1565c0'>ringing: call from {html.escape(str(event['caller']))} "
                f"to {html.escape(str(event['number']))}</b> (answers: {event['policy']})"
            )
        elif kind == "answered":
            self.state = "in call"
            self.screen.value = (
                f"<b style='color:#1b5e20'>in call with {html.escape(str(event['caller']))}</b>"
            )
        elif kind == "dtmf":
            self.digits.value = f"digits received: <b>{html.escape(str(event['digits']))}</b>"
        elif kind in ("held", "resumed"):
            self.screen.value = f"<b>{'on hold (by the far end)' if kind == 'held' else 'in call'}</b>"
        elif kind == "ended":
            self.state = "idle"
            self.screen.value = (
                f"<b>idle</b> (last call ended: {event.get('code')} {html.escape(str(event.get('reason')))})"
            )
        elif kind == "error":
            self.screen.value = f"<b style='color:#c62828'>{html.escape(str(event.get('reason')))}</b>"
        self.answer_button.disabled = self.reject_button.disabled = self.state != "ringing"
        self.hangup_button.disabled = self.state != "in call"
        self._changed.set()

    async def _send(self, command: Command) -> None:
        if self.control.ws is None:
            await self.connect()
        await self.control.send(command)

    async def answer(self) -> None:
        await self._send(AnswerCall())

    async def reject(self) -> None:
        await self._send(RejectCall())

    async def hang_up(self) -> None:
        await self._send(HangupCall())

    async def set_policy(self, policy: str) -> None:
        PhonePolicy.parse(policy)
        await self._send(SetPolicy(value=policy))

    async def wait_for(self, state: str, timeout: float = 10.0) -> None:
        """Until the phone is idle, ringing or in call; TimeoutError names what it is."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.state != state:
            self._changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"mobile phone: not {state} within {timeout:g} s (it is {self.state})")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.control.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class CallDashboard:
    """The call as it happens (the SIP ladder grows, about a second behind) and, after
    hangup, ladder, jitter and loss plots, the quality table, what each network party did
    (its own count, and each hop measured on the wire) and an Export report button."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.title = w.HTML("<h3>Call</h3><i>no call yet</i>")
        self.ladder = w.Image(format="png")
        self.plots = w.VBox()
        self.table = w.HTML()
        self.export_button = w.Button(description="Export report", icon="download", disabled=True)
        self.export_link = w.HTML()
        self.model: CallModel | None = None
        self.result: CallResult | None = None
        self._live: asyncio.Task[None] | None = None
        self.export_button.on_click(lambda _: self.export())
        self.widget = w.VBox(
            [self.title, self.ladder, self.plots, self.table, w.HBox([self.export_button, self.export_link])]
        )

    def _ipython_display_(self) -> None:
        display(self.widget)

    def follow(self, title: str, capture: Path | None, over: asyncio.Event) -> None:
        """Draw the ladder of a running call from its growing capture, refreshed every second
        until `over` is set."""
        if self._live is not None:
            self._live.cancel()
        self.result = self.model = None
        self.export_button.disabled = True
        self.export_link.value = ""
        self.plots.children = ()
        self.table.value = ""
        self.title.value = f"<h3>{html.escape(title)}</h3><i>live</i>"
        if capture is not None:
            self._live = asyncio.ensure_future(self._refresh(capture, over))

    async def _refresh(self, capture: Path, over: asyncio.Event) -> None:
        live = LiveCall(capture, lab_party_names(self.cfg))  # reads each record of the file once
        while not over.is_set():
            try:
                await asyncio.wait_for(over.wait(), LIVE_REFRESH_S)
            except TimeoutError:
                pass
            try:
                model = live.update()
            except pcap.CaptureError as exc:
                self.title.value += f"<p style='color:#c62828'>live ladder: {html.escape(str(exc))}</p>"
                return
            if model.messages and self.result is None:
                self.model = model
                self.ladder.value = plots.png(plots.ladder(model))

    def show_result(self, result: CallResult) -> None:
        """After hangup: the full analysis of the call's capture."""
        self.result = result
        if self._live is not None:
            self._live.cancel()
        status = html.escape(status_text(result.final_status, result.sip_code, result.reason))
        title = f"<h3>Call {result.call_id} to {html.escape(result.number)}: {status}</h3>"
        if result.setup_ms is not None:
            title += f"<p>setup {result.setup_ms:.1f} ms</p>"
        if result.capture_error:
            title += f"<p style='color:#c62828'>{html.escape(result.capture_error)}</p>"
        if result.impairments:
            title += "<p>What the networks did:</p>" + html_table(network_table(result.impairments))
        self.title.value = title
        if result.model is None:
            return
        self.show(result.model)
        self.export_button.disabled = False

    def show(self, model: CallModel) -> None:
        """Any call model: ladder, jitter and loss plots, quality table."""
        self.model = model
        self.ladder.value = plots.png(plots.ladder(model))
        figures = [plots.jitter(model), plots.loss(model), plots.quality(model)] if model.streams else []
        self.plots.children = tuple(w.Image(value=plots.png(f), format="png") for f in figures)
        self.table.value = (
            html_table(stream_table(model.streams, BRIEF))
            + (html_table(hop_table(model.hops)) if model.hops else "")
            + (html_table(pesq_table(model)) if model.pesq else "")
        )

    def export(self) -> Path | None:
        """Link the call's HTML report (written when the call finished, from the same model;
        a model shown with show() gets its report written now)."""
        if self.model is None:
            return None
        if self.result is not None and self.result.report and self.result.model is self.model:
            path = Path(self.result.report)
        else:
            name = Path(self.model.source).stem
            path = write_report(self.model, self.cfg.captures_dir / f"{name}.html", f"Call {name}")
        link = html.escape(os.path.relpath(path, Path.cwd()))
        self.export_link.value = f"report: <a href='{link}' target='_blank'>{html.escape(str(path))}</a>"
        return path
