"""The Phone page in Chromium: the page alone against a stand-in gateway (number rule, bad
input, a gateway that drops the connection, a denied microphone or camera, what Video call
offers and shows), then real calls through the lab (slow): audio both ways, keypad DTMF,
Hold, blind transfer, a wrong password, a video call the mobile phone takes as voice."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websockets
from aiortc.rtp import RtpPacket
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request

from lab import webrtc
from lab.analysis.ladder import ladder_rows
from lab.audio import best_match, heard_match, read_wav
from lab.chromium import CHROMIUM, CHROMIUM_ARGS, PageSession, browser_call, check_chromium, chromium
from lab.cli import main
from lab.client import Call, CallStatus, LoginFailed
from lab.config import LabConfig, PhonePolicy
from lab.gateway import page, video
from lab.numbers import InvalidNumber, normalize_number
from lab.phonecontrol import HangupCall
from lab.scenario import CallResult, phone_command, place_call
from lab.signaling import GATEWAY_MESSAGES, Status, VideoEvent
from lab.sip import videophone
from lab.sip.sdp import parse_sdp
from lab.stack import Stack

if TYPE_CHECKING:
    from conftest import PhoneScreen

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)
# A test that expects RING lets the phone ring first: Kamailio's two UDP workers may forward
# a 180 and a 200 sent together in either order, and the gateway drops a 180 after the 200.
RINGS = PhonePolicy("answer", 0.3)


def needs_chromium() -> None:
    try:
        check_chromium()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: the CI setup must install it")
        pytest.skip(str(exc))


# --- the page's files and the SDP it sends, without a browser --------------------------------


def get(cfg: LabConfig, path: str) -> tuple[int, str, bytes]:
    response = page.responder(cfg)(None, Request(path, Headers()))  # type: ignore[arg-type]
    assert response is not None
    return response.status_code, response.headers.get("Content-Type", ""), response.body


def test_the_gateway_serves_the_page_and_never_the_password() -> None:
    cfg = dataclasses.replace(LabConfig(), password="s3cret-pw")
    assert get(cfg, "/phone")[0] == 302
    status, kind, body = get(cfg, "/phone/")
    assert status == 200 and kind.startswith("text/html") and b'id="voice-call"' in body
    assert get(cfg, "/phone/client.js")[1].startswith("text/javascript")
    status, _, body = get(cfg, "/phone/lab.json")
    lab = json.loads(body)
    assert lab["account"]["login"] == cfg.login and lab["account"]["domain"] == cfg.sipserver.host
    assert "s3cret-pw" not in body.decode() and "password" not in lab["account"]
    for outside in ("/phone/../config.py", "/phone/%2e%2e/cli.py", "/phone/page.py", "/", "/etc/passwd"):
        assert get(cfg, outside)[0] == 404, outside
    upgrade = Request("/", Headers([("Upgrade", "websocket")]))
    assert page.responder(cfg)(None, upgrade) is None  # type: ignore[arg-type]


def test_only_loopback_candidates_reach_the_gateway() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2122260223 192.168.1.5 50000 typ host generation 0\r\n"
        "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host generation 0\r\n"
        "a=candidate:3 1 udp 2122129151 ::1 50002 typ host generation 0\r\n"
        "a=candidate:4 1 udp 2122063615 3f1c-ab.local 50003 typ host generation 0\r\n"
        "a=rtcp-mux\r\n"
    )
    kept = webrtc.loopback_only(sdp)
    assert [line.split()[4] for line in kept.splitlines() if line.startswith("a=candidate")] == ["127.0.0.1"]
    assert kept.endswith("a=rtcp-mux\r\n")


def test_rfc4733_events_become_digits_once_each() -> None:
    digits: list[str] = []
    events = webrtc.TelephoneEvents(digits.append)
    # "5" in three packets (the end one repeated), then "#", at their start's timestamps.
    for timestamp, payload in [
        (960, bytes([5, 10, 0, 160])),
        (960, bytes([5, 10, 1, 64])),
        (960, bytes([5, 0x80 | 10, 7, 128])),
        (960, bytes([5, 0x80 | 10, 7, 128])),
        (24000, bytes([11, 10, 0, 160])),
        (48000, bytes([16, 10, 0, 160])),  # flash: not a digit
        (50000, b"\x01"),  # too short to be an event
    ]:
        events.packet(RtpPacket(payload_type=126, timestamp=timestamp, payload=payload))
    assert digits == ["5", "#"]


def test_browser_call_video_asks_for_a_video_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """`calllab browser-call NUMBER --video` asks lab.chromium for a video call (the call
    itself and its JSON: the slow test below)."""
    asked: list[dict[str, Any]] = []

    async def browser_call(cfg: LabConfig, number: str, **kwargs: Any) -> CallResult:
        asked.append({"number": number, **kwargs})
        return CallResult("c1", number, "FINISH", 200, "hangup", browser="chromium")

    monkeypatch.setattr("lab.stack.running_config", LabConfig)
    monkeypatch.setattr("lab.chromium.check_chromium", lambda: None)
    monkeypatch.setattr("lab.chromium.browser_call", browser_call)
    main(["browser-call", NUMBER, "--video", "--duration", "2", "--json"])
    main(["browser-call", NUMBER, "--json"])
    assert [(a["number"], a["video"], a["duration"]) for a in asked] == [
        (NUMBER, True, 2.0),
        (NUMBER, False, 5.0),
    ]


# --- the page in Chromium, against a stand-in gateway ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STANDIN_VIDEO = (
    "video declined by the far end (stand-in: port 0 in its SDP answer); the call goes on as voice"
)


def said(kind: type[Status | VideoEvent], call_id: str, **fields: Any) -> str:
    """A message as the gateway sends it."""
    return GATEWAY_MESSAGES.encode(kind(call_id=call_id, t=time.time(), **fields))


@pytest.fixture(scope="module")
async def standin() -> AsyncIterator[tuple[LabConfig, list[dict[str, Any]]]]:
    """The page served as the gateway serves it, by a WebSocket server that logs in anyone
    but "gone" (it hangs up on them) and records every message. A call is TRYING for ever
    (no SDP answer) and its video declined, as the gateway says it; a hangup FINISHes it."""
    needs_chromium()
    port = free_port()
    cfg = dataclasses.replace(
        LabConfig(), gateway=dataclasses.replace(LabConfig().gateway, host="127.0.0.1"), ws_port=port
    )
    seen: list[dict[str, Any]] = []

    async def gateway(ws: ServerConnection) -> None:
        async for text in ws:
            msg = json.loads(text)
            seen.append(msg)
            if msg["type"] == "connect" and msg["sip"]["login"] == "gone":
                await ws.close()
            elif msg["type"] == "connect":
                await ws.send(json.dumps({"type": "connected", "login": msg["sip"]["login"], "domain": "x"}))
            elif msg["type"] == "call":
                await ws.send(
                    said(Status, msg["call_id"], status=CallStatus.TRYING, sip_code=None, reason="")
                )
                if video.offers_video(msg["sdp"]):
                    await ws.send(said(VideoEvent, msg["call_id"], declined=True, reason=STANDIN_VIDEO))
            elif msg["type"] == "hangup":
                await ws.send(
                    said(Status, msg["call_id"], status=CallStatus.FINISH, sip_code=200, reason="hangup")
                )

    async with websockets.serve(gateway, "127.0.0.1", port, process_request=page.responder(cfg)):
        yield cfg, seen


NUMBERS = [
    "+7 (999) 123-45-67",
    "89991234567",
    "*100#",
    "12ab",
    "",
    "+",
    "1" * 33,
    "+7-999.1",
    "++7",
    "7 9 9",
]


async def test_the_page_checks_numbers_as_the_lab_does(standin: tuple[LabConfig, list[Any]]) -> None:
    cfg, _ = standin
    async with chromium(cfg) as p:
        await p.goto(page.url(cfg))
        rule = json.loads(page.lab_json(cfg))["numbers"]
        js = await p.evaluate(
            """async ([numbers, rule]) => {
                const { normalizeNumber } = await import("./client.js");
                const checked = (n) => { try { return normalizeNumber(n, rule); } catch { return null; } };
                return numbers.map(checked);
            }""",
            [NUMBERS, rule],
        )

    def python(number: str) -> str | None:
        try:
            return normalize_number(number)
        except InvalidNumber:
            return None

    assert js == [python(n) for n in NUMBERS]
    assert js[:3] == ["+79991234567", "89991234567", "*100#"] and js[3] is None


async def login(cfg: LabConfig, p: Any, user: str) -> str:
    session = PageSession(cfg, dataclasses.replace(cfg.account(), login=user, password="pw-123456"), p)
    try:
        await session.connect(timeout=5)
    except LoginFailed as exc:
        return f"{exc.code} {exc.reason}"
    return "ok"


async def test_a_malformed_number_is_refused_before_any_sip(standin: tuple[LabConfig, list[Any]]) -> None:
    cfg, seen = standin
    async with chromium(cfg) as p:
        assert await login(cfg, p, "alice") == "ok"
        assert await p.input_value("#password") == ""  # the password left the page with the login
        assert "pw-123456" not in await p.content()
        await p.fill("#number", "12ab")
        await p.click("#voice-call")
        assert "is not a phone number" in (await p.text_content("#status") or "")
    assert not [m for m in seen if m["type"] == "call"]


async def test_the_page_says_when_the_gateway_drops_it(standin: tuple[LabConfig, list[Any]]) -> None:
    cfg, _ = standin
    async with chromium(cfg) as p:
        assert await login(cfg, p, "gone") == "503 connection to the gateway was lost"
        assert await p.text_content("#status") == "login failed: 503 connection to the gateway was lost"


# No fake-UI flag: the permission prompt is left unanswered, so Chromium denies it.
DENIED = [a for a in CHROMIUM_ARGS if a != "--use-fake-ui-for-media-stream"]
# Chromium's fake devices with no camera among them (its microphones stay).
NO_CAMERA = [f"{a}=device-count=0" if a == "--use-fake-device-for-media-stream" else a for a in CHROMIUM_ARGS]


@pytest.mark.parametrize(
    "button, args, said",
    [
        ("#voice-call", DENIED, "FAILED microphone access was denied: allow it for this page and call again"),
        (
            "#video-call",
            DENIED,
            "FAILED camera and microphone access was denied: allow them for this page and call again",
        ),
        ("#video-call", NO_CAMERA, "FAILED no camera found: connect one and call again"),
    ],
    ids=["microphone-denied", "camera-denied", "no-camera"],
)
async def test_the_page_says_when_the_microphone_or_camera_is_denied_or_missing(
    standin: tuple[LabConfig, list[Any]], button: str, args: list[str], said: str
) -> None:
    from playwright.async_api import async_playwright

    cfg, seen = standin
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            p = await browser.new_page()
            assert await login(cfg, p, "bob") == "ok"
            await p.fill("#number", NUMBER)
            await p.click(button)
            await p.wait_for_function("document.getElementById('status').textContent.startsWith('FAILED')")
            assert await p.text_content("#status") == said
        finally:
            await browser.close()
    assert not [m for m in seen if m["type"] == "call" and m["visible_name"] == "bob"]


REMOTE_VIDEO = """() => {
    const v = document.getElementById("remote-video");
    return { hidden: v.hidden, stream: v.srcObject !== null, width: v.videoWidth };
}"""


async def test_video_call_offers_the_camera_in_vp8_and_h264_and_shows_it(
    standin: tuple[LabConfig, list[Any]],
) -> None:
    cfg, seen = standin
    async with chromium(cfg) as p:
        assert await login(cfg, p, "carol") == "ok"
        await p.fill("#number", NUMBER)
        await p.click("#video-call")
        # Chromium's fake camera plays in the local video element; nothing came from the far end.
        await p.wait_for_function("document.getElementById('local-video').videoWidth > 0", timeout=5000)
        assert await p.evaluate("document.getElementById('local-video').hidden") is False
        await p.wait_for_function("document.getElementById('event').textContent !== ''", timeout=5000)
        assert await p.text_content("#event") == STANDIN_VIDEO
        assert await p.text_content("#status") == "TRYING"
        assert await p.evaluate(REMOTE_VIDEO) == {"hidden": True, "stream": False, "width": 0}
        await p.click("#hangup")
        await p.wait_for_function("document.getElementById('status').textContent.startsWith('FINISH')")
        assert await p.evaluate("document.getElementById('local-video').hidden") is True
    offer = next(m["sdp"] for m in seen if m["type"] == "call" and m["visible_name"] == "carol")
    audio, camera = parse_sdp(offer)
    assert (audio.media, camera.media, camera.direction) == ("audio", "video", "sendrecv")
    assert {c.name for c in camera.codecs} == {"VP8", "H264", "rtx"}
    assert video.offers_video(offer)  # what the gateway offers on the SIP leg


# --- calls through the lab -------------------------------------------------------------------


def heard(path: str | None) -> Any:
    assert path, "no recording"
    return read_wav(Path(path))[0]


@pytest.mark.slow
async def test_chromium_calls_the_phone_and_both_sides_hear_each_other(stack: Stack) -> None:
    needs_chromium()
    result = await browser_call(stack.cfg, NUMBER, duration=4.0, answer=RINGS)
    assert result.ok, result
    assert result.browser == "chromium"
    assert [s["status"] for s in result.statuses] == ["PENDING", "TRYING", "RING", "ESTABLISHED", "FINISH"]
    assert (result.sip_code, result.reason) == (200, "hangup")
    assert result.setup_ms is not None and 0 < result.setup_ms < 2000
    assert result.codecs == {"browser": "opus", "sip": "PCMU", "mobile": "GSM"}
    assert result.capture and result.report and result.model is not None
    # Chromium checks from every interface it has; only its loopback pair may carry the media.
    assert "Browser" in {s.src_party for s in result.model.streams}
    assert all(s.src.startswith("127.") and s.dst.startswith("127.") for s in result.model.streams)
    browser_prompt, _ = read_wav(stack.cfg.prompts_dir / "browser.wav")
    phone_prompt, _ = read_wav(stack.cfg.prompts_dir / "phone.wav")
    at_phone, at_browser = heard(result.audio["phone_received"]), heard(result.audio["browser_received"])
    assert heard_match(browser_prompt, at_phone) > 0.85
    assert best_match(phone_prompt, at_phone).correlation < 0.75
    assert heard_match(phone_prompt, at_browser) > 0.85
    assert best_match(browser_prompt, at_browser).correlation < 0.75
    # The call's own PESQ rows, with a mouth-to-ear delay each way from the page's recordings.
    assert {p.direction for p in result.model.pesq} == {"Browser -> Mobile phone", "Mobile phone -> Browser"}
    for row in result.model.pesq:
        assert row.mos_lqo > 1.8, row
        # Above 0: heard after it was said (a misaligned recording gives 0 or less). Relayed,
        # a call's way to the phone can take under 20 ms (bench/hops.py: 13.5 ms).
        assert row.mouth_to_ear_ms is not None and 0 < row.mouth_to_ear_ms < 400, row


@pytest.mark.slow
async def test_a_video_call_from_the_page_to_a_mobile_goes_on_as_voice(stack: Stack) -> None:
    """Video call offers Chromium's camera (VP8, H.264); the PSTN gateway declines the video,
    the page is answered video port 0, the page says so and shows no remote video, and both
    sides hear each other."""
    needs_chromium()
    cfg = stack.cfg
    seen: list[asyncio.Task[dict[str, Any]]] = []

    async def look(p: Any) -> dict[str, Any]:
        await p.wait_for_function("document.getElementById('event').textContent !== ''", timeout=5000)
        await p.wait_for_function("document.getElementById('local-video').videoWidth > 0", timeout=5000)
        return {"event": await p.text_content("#event"), "remote": await p.evaluate(REMOTE_VIDEO)}

    async with chromium(cfg) as p:

        def on_status(call: Call) -> None:
            if call.status == CallStatus.ESTABLISHED:
                seen.append(asyncio.ensure_future(look(p)))

        session = PageSession(cfg, cfg.account(), p)
        result = await place_call(
            cfg, NUMBER, duration=3.0, answer=RINGS, video=True, on_status=on_status, client=lambda _: session
        )
        assert seen, result
        shown = await seen[0]
    reason = (
        "video declined by the far end (PSTN gateway: port 0 in its SDP answer); the call goes on as voice"
    )
    assert shown == {"event": reason, "remote": {"hidden": True, "stream": False, "width": 0}}
    assert result.ok and result.model is not None, result
    assert result.browser == "chromium"
    assert [s["status"] for s in result.statuses] == ["PENDING", "TRYING", "RING", "ESTABLISHED", "FINISH"]
    assert result.video is not None and (result.video["declined"], result.video["reason"]) == (True, reason)
    assert any(e["what"] == f"video: {reason}" for e in result.events)
    offer, answer = (parse_sdp(x["sdp"]) for x in result.webrtc_sdp)
    assert [x["kind"] for x in result.webrtc_sdp] == ["offer", "answer"]
    assert {c.name for c in offer[1].codecs} == {"VP8", "H264", "rtx"}
    assert [(m.media, m.port > 0) for m in answer] == [("audio", True), ("video", False)]
    notes = {(r.src, r.dst, r.label): r.note for r in ladder_rows(result.model)}
    assert "; video VP8,rtx,H264,rtx" in notes["Browser", "Gateway", "SDP offer"]
    answered = notes["Gateway", "Browser", "SDP answer"]
    assert " sendrecv; video declined (port 0); ICE host udp 127." in answered, answered
    invite = notes["Gateway", "SIP server", "INVITE"]
    assert invite.startswith("audio PCMU,PCMA sendrecv; video VP8,H264") and invite.endswith(" sendrecv"), (
        invite
    )
    assert notes["SIP server", "Gateway", "200 OK (INVITE)"] == "audio PCMU sendrecv; video declined (port 0)"
    assert {s.codec for s in result.model.streams} == {"opus", "PCMU", "GSM"}  # no video on any leg
    browser_prompt, _ = read_wav(cfg.prompts_dir / "browser.wav")
    phone_prompt, _ = read_wav(cfg.prompts_dir / "phone.wav")
    at_phone, at_browser = heard(result.audio["phone_received"]), heard(result.audio["browser_received"])
    assert heard_match(browser_prompt, at_phone) > 0.85
    assert best_match(phone_prompt, at_phone).correlation < 0.75
    assert heard_match(phone_prompt, at_browser) > 0.85
    assert best_match(browser_prompt, at_browser).correlation < 0.75


@pytest.mark.slow
async def test_the_keypad_sends_dtmf_that_the_phone_gets_in_order(stack: Stack) -> None:
    needs_chromium()
    result = await browser_call(stack.cfg, NUMBER, duration=3.0, answer=NOW, dtmf="159#*0")
    assert result.ok, result
    digits = [e["digit"] for e in result.phone["events"] if e["event"] == "dtmf"]
    assert "".join(digits) == "159#*0"
    # In the browser's own RTP (the gateway took its telephone-event), not asked of the gateway.
    keys = [a["action"] for a in result.actions if a["action"].startswith("DTMF")]
    assert keys == [f"DTMF {d} (rtcdtmfsender)" for d in "159#*0"]


@pytest.mark.slow
async def test_hold_and_resume_from_the_page(stack: Stack) -> None:
    needs_chromium()
    result = await browser_call(stack.cfg, NUMBER, duration=3.0, answer=RINGS, hold=1.0, report=False)
    assert result.ok, result
    statuses = [s["status"] for s in result.statuses]
    assert statuses == ["PENDING", "TRYING", "RING", "ESTABLISHED", "HOLD", "ESTABLISHED", "FINISH"]


@pytest.mark.slow
async def test_blind_transfer_from_the_page(stack: Stack) -> None:
    needs_chromium()
    result = await browser_call(
        stack.cfg, NUMBER, duration=2.0, answer=NOW, transfer="+79990000002", report=False
    )
    assert result.transfer == {"target": "+79990000002", "attended": False, "code": 200, "reason": "OK"}
    assert (result.final_status, result.reason) == ("FINISH", "transferred to +79990000002")


@pytest.mark.slow
async def test_a_wrong_password_shows_403_on_the_page(stack: Stack) -> None:
    needs_chromium()
    cfg = stack.cfg
    async with chromium(cfg) as p:
        session = PageSession(cfg, dataclasses.replace(cfg.account(), password="not-the-password"), p)
        with pytest.raises(LoginFailed) as failed:
            await session.connect()
        assert failed.value.code == 403
        status = await p.text_content("#status") or ""
        assert status.startswith("login failed: 403 ") and "authentication failed" in status
        assert "not-the-password" not in await p.content()
        assert await p.is_disabled("#voice-call")


@pytest.mark.slow
async def test_the_phone_hangs_up_and_the_page_shows_it(stack: Stack) -> None:
    needs_chromium()
    hanging_up: list[asyncio.Task[object]] = []

    def on_status(call: Call) -> None:
        if call.status == CallStatus.ESTABLISHED:
            hanging_up.append(asyncio.ensure_future(phone_command(stack.cfg, None, HangupCall())))

    async with chromium(stack.cfg) as p:
        session = PageSession(stack.cfg, stack.cfg.account(), p)
        result = await place_call(
            stack.cfg,
            NUMBER,
            duration=3.0,
            answer=NOW,
            on_status=on_status,
            report=False,
            client=lambda _: session,
        )
        assert await p.text_content("#status") == "FINISH 200 remote hangup"
    assert hanging_up and (result.final_status, result.sip_code, result.reason) == (
        "FINISH",
        200,
        "remote hangup",
    )
    assert "hangup()" not in [a["action"] for a in result.actions]  # the page did not hang up itself


@pytest.mark.slow
@pytest.mark.skipif(videophone.find_binary() is None, reason="baresip is not installed (baresip-core)")
async def test_a_video_call_from_the_page_to_the_video_phone_shows_each_end_the_other(
    stack: Stack, phone_screen: PhoneScreen
) -> None:
    """Chromium's Video call to baresip (1001): VP8 relayed both ways by the gateway; the
    page's remote video shows the phone's test pattern, the phone decodes Chromium's camera."""
    needs_chromium()
    cfg = stack.cfg
    async with chromium(cfg) as p:
        session = PageSession(cfg, cfg.account(), p)
        result = await place_call(
            cfg,
            cfg.videophone_number,
            duration=6.0,
            video=True,
            on_status=phone_screen.on_status,
            client=lambda _: session,
        )
    assert result.ok and result.model is not None, result
    assert result.video is not None and result.video["declined"] is False, result.video
    # The page showed the phone's test pattern (fakevideo: 320x240, 25 fps) ...
    assert result.video["size"] == "320x240" and result.video["frames_received"] > 4 * 15, result.video
    # ... and the phone decoded Chromium's fake camera.
    width, height = await phone_screen.size()
    assert width > 0 and height > 0
    rates = videophone.frame_rates(cfg)
    assert rates is not None and rates[1] > 15, rates  # what the phone received, frames/s
    video_streams = {(s.src_party, s.dst_party) for s in result.model.streams if s.codec == "VP8"}
    assert video_streams == {
        ("Browser", "Gateway"),
        ("Gateway", "Video phone"),
        ("Video phone", "Gateway"),
        ("Gateway", "Browser"),
    }
