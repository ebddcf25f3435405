"""A real browser on the call: headless Chromium (Debian's) on the lab's Phone page, driven
by Playwright through the page's own form and buttons. PageSession and PageCall are
lab.client's Session and Call whose work the page does, so the lab's call code
(scenario.place_call, LabCall) places, records and analyses a Chromium call as it does an
aiortc one."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab.audio import best_match, read_wav, write_wav
from lab.client import Call, LoginFailed, Session
from lab.client.media import CallMedia, VideoSeen
from lab.client.session import CONNECT_TIMEOUT
from lab.config import LabConfig, PhonePolicy, SipAccount
from lab.gateway.page import url as page_url
from lab.scenario import RING_TIMEOUT, CallResult, place_call
from lab.signaling import GATEWAY_MESSAGES, CallStatus
from lab.typedjson import MessageError
from lab.webrtc import BrowserAudio

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: headless, nothing fetched from the network (also what tests/test_browser.py runs JupyterLab in)
HEADLESS_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: and fake devices with the prompt as microphone; loopback ICE candidates (without that
#: flag Chromium gathers none with no STUN server)
CHROMIUM_ARGS = [
    *HEADLESS_ARGS,
    "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
PAGE_TIMEOUT = 10.0  # s for the page to load and for a button to be there
DTMF_KEY_GAP = 0.25  # s between keypad presses: RTCDTMFSender replaces the tones it still plays


class ChromiumUnavailable(RuntimeError):
    pass


def _monotonic(wall_ms: float) -> float:
    """A page's wall-clock time (ms since the epoch) on time.monotonic(), the lab's clock."""
    return wall_ms / 1000 - time.time() + time.monotonic()


class PageMedia(CallMedia):
    """The page's media seen as the client's: the codec from the SDP answer the page took,
    and the page's recordings (what its microphone sent, what it heard) saved when the call
    ends, as browser_sent.wav and browser_received.wav."""

    def __init__(self, page: Page, call: Call, prompt: Path | None) -> None:
        super().__init__(call.audio, None, call.record_dir, call.session.tasks, f"call {call.call_id}")
        self.page = page
        self.prompt = prompt
        #: time.monotonic() when the prompt's loop started, as the page's microphone track had it
        self.sent_t0: float | None = None

    async def close(self) -> None:
        try:
            await self.pc.close()
            recordings = await self.page.evaluate("() => window.calllab.recordings")
            if self.record_dir is not None and recordings:
                self._save(recordings)
            seen = await self.page.evaluate("() => window.calllab.videoSeen")
            if seen:
                self.video_seen = VideoSeen(int(seen["frames"]), int(seen["width"]), int(seen["height"]))
        finally:
            self.closed.set()

    def _save(self, recordings: dict[str, dict[str, Any]]) -> None:
        assert self.record_dir is not None
        for name, wav in (("sent", "browser_sent.wav"), ("heard", "browser_received.wav")):
            track = recordings.get(name)
            if not track or track["t0"] is None:
                continue
            pcm = np.frombuffer(base64.b64decode(track["pcm"]), dtype="<i2").astype(np.float32) / 32768.0
            write_wav(self.record_dir / wav, pcm, int(track["rate"]))
            t0 = _monotonic(float(track["t0"]))
            if name == "heard":
                self.heard.started_at = t0
            elif self.prompt is not None and len(pcm):
                # Chromium plays the prompt file in a loop from when the microphone opens:
                # where in the loop the recording starts dates the loop's start.
                prompt, rate = read_wav(self.prompt)
                match = best_match(prompt, pcm, rate)
                self.sent_t0 = t0 - match.lag_s % (len(prompt) / rate)


class PageCall(Call):
    """A call the page places: the buttons are pressed on the page, its statuses and events
    come from the page's client (the gateway's own messages)."""

    browser = "chromium"

    def __post_init__(self) -> None:
        super().__post_init__()
        assert isinstance(self.session, PageSession)
        self.page = self.session.page
        self.media = PageMedia(self.page, self, self.prompt)

    @property
    def sent_t0(self) -> float | None:
        assert isinstance(self.media, PageMedia)
        return self.media.sent_t0

    async def call(self) -> None:
        await self.page.evaluate(
            "([callId, headers]) => { window.calllab.next = { callId, headers }; }",
            [self.call_id, self.headers],
        )
        await self.page.fill("#number", self.callee)
        self.started_at = time.time()
        button = "#video-call" if self.constraints.get("video") else "#voice-call"
        await self.page.click(button, timeout=PAGE_TIMEOUT * 1000)

    async def _press(self, selector: str, action: str) -> None:
        self.actions.append((time.time(), action))
        await self.page.click(selector, timeout=PAGE_TIMEOUT * 1000)

    async def hangup(self) -> None:
        if not self.status.final:
            await self._press("#hangup", "hangup()")

    async def hold(self) -> None:
        await self._press("#hold", "hold()")

    async def unhold(self) -> None:
        await self._press("#hold", "unhold()")

    async def send_dtmf(self, digits: str, method: str = "rfc4733") -> None:
        """The page's keypad, one key at a time. The page sends each digit by RTCDTMFSender
        when the gateway took telephone-event, else asks the gateway to; each key's action
        says which ("DTMF 5 (rtcdtmfsender)", "DTMF 5 (gateway)")."""
        if method != "rfc4733":
            raise ValueError(f"DTMF method {method!r}: the Phone page sends RFC 4733 only")
        for digit in digits:
            await self.page.click(f"#keypad [data-key='{digit}']", timeout=PAGE_TIMEOUT * 1000)
            await asyncio.sleep(DTMF_KEY_GAP)

    async def transfer(self, target: str | Call) -> None:
        if isinstance(target, Call):
            raise NotImplementedError("attended transfer: the Phone page transfers blind only")
        self.actions.append((time.time(), f"transfer({target})"))
        await self.page.fill("#transfer-target", target)
        await self.page.click("#transfer", timeout=PAGE_TIMEOUT * 1000)

    async def answer(self) -> None:
        raise NotImplementedError("incoming calls: the Phone page places calls only")

    def _on_page(self, event: dict[str, Any]) -> None:
        match event["kind"]:
            case "status":
                if event["status"] == CallStatus.PENDING:
                    self.started_at = event["t"]  # the click, as the page had it (not Playwright's)
                self._set(CallStatus(event["status"]), event["sip_code"], event["reason"], event["t"])
            case "offer":
                self._log_sdp("browser", "offer", event["sdp"])
            case "answer":
                self._log_sdp("gateway", "answer", event["sdp"])
                self.media._negotiated(event["sdp"])
            case "dtmf":
                self.actions.append((time.time(), f"DTMF {event['digit']} ({event['how']})"))
            case "message":
                try:
                    msg = GATEWAY_MESSAGES.decode(event["json"])
                except MessageError:
                    return
                if msg.KIND in ("event", "error"):
                    self._on_message(msg)  # type: ignore[arg-type]


class PageSession(Session):
    """The page's login form as a Session: connect() fills it in and presses Log in."""

    def __init__(self, cfg: LabConfig, account: SipAccount, page: Page) -> None:
        super().__init__(page_url(cfg), account, host=cfg.browser.host)
        self.page = page
        self._login_reply: asyncio.Future[dict[str, Any]] | None = None
        self._current: PageCall | None = None

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Load the page, fill in its login form, press Log in; LoginFailed as the page says."""
        from playwright.async_api import Error as PlaywrightError

        self._login_reply = asyncio.get_running_loop().create_future()
        await self.page.expose_function("calllabReport", self.on_page)
        try:
            await self.page.goto(self.url, timeout=PAGE_TIMEOUT * 1000)
            await self.page.wait_for_selector("#keypad button", timeout=PAGE_TIMEOUT * 1000)
        except PlaywrightError as exc:
            raise LoginFailed(503, f"the Phone page at {self.url} did not load: {exc.message}") from None
        a = self.account
        for field, value in (
            ("login", a.login),
            ("auth_name", a.auth_name),
            ("password", a.password),
            ("domain", a.domain),
            ("outbound_proxy", a.outbound_proxy),
            ("port", str(a.port)),
        ):
            await self.page.fill(f"#{field}", value)
        await self.page.click("#login-button")
        try:
            reply = await asyncio.wait_for(self._login_reply, timeout)
        except TimeoutError:
            raise LoginFailed(408, f"the Phone page did not log in within {timeout:g} s") from None
        if not reply["ok"]:
            raise LoginFailed(int(reply["code"] or 0), str(reply["reason"]))

    def create_call(self, callee: str, **kwargs: Any) -> Call:
        if kwargs.get("audio") not in (None, BrowserAudio()) or kwargs.get("codec") not in (None, "opus"):
            raise ValueError("the Phone page calls with Chromium's own audio settings (Opus)")
        kwargs.pop("codec", None)
        kwargs.pop("audio", None)
        video = bool((kwargs.pop("constraints", None) or {}).get("video"))
        call = PageCall(
            self,
            callee=callee,
            visible_name=self.account.login,
            constraints={"audio": True, "video": video},
            audio=BrowserAudio(),
            **kwargs,
        )
        self.calls[call.id] = call
        self._current = call
        return call

    def on_page(self, event: dict[str, Any]) -> None:
        """Everything the page reports (window.calllabReport)."""
        if event["kind"] == "login":
            if self._login_reply is not None and not self._login_reply.done():
                self._login_reply.set_result(event)
        elif event["kind"] == "refused" and self._current is not None:
            self._current._set(CallStatus.FAILED, None, str(event["reason"]))
        elif (
            self._current is not None and event.get("call_id", self._current.call_id) == self._current.call_id
        ):
            self._current._on_page(event)

    async def disconnect(self) -> None:
        self.ws = None


def check_chromium() -> None:
    """ChromiumUnavailable naming what is missing."""
    if not Path(CHROMIUM).exists():
        raise ChromiumUnavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise ChromiumUnavailable("Playwright is not installed (pip install playwright)") from None


@asynccontextmanager
async def chromium(cfg: LabConfig, microphone: Path | None = None) -> AsyncIterator[Page]:
    """Headless Chromium on the lab's Phone page, `microphone` (a WAV) as its microphone
    (default: the lab's browser prompt)."""
    check_chromium()
    from playwright.async_api import async_playwright

    wav = microphone or cfg.prompts_dir / "browser.wav"
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=args, env=dict(os.environ))
        try:
            page = await browser.new_page()
            yield page
        finally:
            await browser.close()


async def browser_call(
    cfg: LabConfig,
    number: str,
    *,
    duration: float = 5.0,
    dtmf: str = "",
    hold: float = 0.0,
    transfer: str = "",
    password: str | None = None,
    answer: PhonePolicy | None = None,
    on_status: Callable[[Call], None] | None = None,
    ring_timeout: float = RING_TIMEOUT,
    capture: bool = True,
    report: bool = True,
    video: bool = False,
) -> CallResult:
    """place_call with Chromium on the Phone page as the browser: log in on the page's form,
    dial (Video call with `video`: Chromium's test-pattern camera, VP8 and H.264), talk for
    `duration` s (keypad `dtmf`, Hold for `hold` s, blind `transfer`), hang up."""
    async with chromium(cfg) as page:
        result = await place_call(
            cfg,
            number,
            duration=duration,
            answer=answer,
            password=password,
            on_status=on_status,
            ring_timeout=ring_timeout,
            capture=capture,
            report=report,
            dtmf=dtmf,
            hold=hold,
            transfer=transfer,
            video=video,
            client=lambda account: PageSession(cfg, account, page),
        )
    return result
