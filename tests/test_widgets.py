"""The notebook widgets, driven through the same methods their buttons call, against the
real lab."""

from __future__ import annotations

import asyncio
import io
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from lab.client import CALL_STATUS, Call
from lab.phonecontrol import HangupCall
from lab.scenario import phone_command
from lab.sip import videophone
from lab.stack import Stack
from lab.widgets import CallDashboard, MobilePhoneWidget, PhoneWidget

pytestmark = pytest.mark.slow
NUMBER = "+79991234567"


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Until `condition()` holds; fails naming `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.05)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
async def phone(stack: Stack) -> AsyncIterator[PhoneWidget]:
    """A Phone widget logged out after the test: the gateway holds 8 sessions at most."""
    widget = PhoneWidget(stack.cfg)
    yield widget
    if widget.session is not None:
        await widget.session.disconnect()


@pytest.fixture
async def mobile(stack: Stack) -> MobilePhoneWidget:
    phone = await MobilePhoneWidget(stack.cfg).connect()
    yield phone
    await phone.set_policy("after:1")
    await phone.close()


async def test_phone_widget_call_with_keypad_hold_and_dashboard(
    stack: Stack, mobile: MobilePhoneWidget
) -> None:
    await mobile.set_policy("after:0.3")
    dashboard = CallDashboard(stack.cfg)
    phone = PhoneWidget(stack.cfg, dashboard=dashboard)
    assert phone.form.voice_button.disabled and phone.form.hangup_button.disabled  # nothing before login
    assert await phone.log_in()
    assert phone.form.password.value == "" and "logged in as VKP009" in phone.form.status.value
    assert not phone.form.voice_button.disabled and phone.form.hangup_button.disabled
    call = await phone.voice_call(NUMBER)
    assert call is not None and call.status == CALL_STATUS.ESTABLISHED
    assert (
        not phone.form.hangup_button.disabled
        and phone.form.voice_button.disabled
        and phone.form.login_button.disabled
    )
    await phone.press("5")
    await phone.press("#")
    await eventually(lambda: "<b>5#</b>" in mobile.digits.value, "the phone shows the digits 5#")
    # The live ladder is drawn during the call, from the capture: INVITE, then 200 OK, on every hop.
    await eventually(lambda: dashboard.model is not None, "the dashboard draws the live ladder")
    assert "live" in dashboard.title.value and png_size(dashboard.ladder.value) > (400, 300)
    assert dashboard.model is not None
    live = [(m.src_party, m.dst_party, m.label) for m in dashboard.model.messages]
    invite = live.index(("Gateway", "SIP server", "INVITE"))
    assert ("Mobile phone", "PSTN gateway", "200 OK") in live[invite:]
    await phone.toggle_hold()
    await call.wait_for(CALL_STATUS.HOLD, timeout=5)
    assert phone.form.hold_button.description == "Unhold"
    await phone.toggle_hold()
    assert await call.wait_for(CALL_STATUS.ESTABLISHED, timeout=5) == CALL_STATUS.ESTABLISHED
    assert phone.form.hold_button.description == "Hold"
    await phone.hang_up()
    result = await phone.wait_until_over()
    assert result is not None and result.final_status == "FINISH"
    assert [s["status"] for s in result.statuses] == [
        "PENDING",
        "TRYING",
        "RING",
        "ESTABLISHED",
        "HOLD",
        "ESTABLISHED",
        "FINISH",
    ]
    finish = f"FINISH {result.sip_code} {result.reason}"
    assert (result.sip_code, result.reason) == (200, "hangup") and finish in phone.form.history
    assert phone.form.hangup_button.disabled and not phone.form.voice_button.disabled
    # Sent and heard, at both ends: each player holds that recording's WAV.
    players = {p.children[0].value: p.children[1].value for p in phone.form.players.children}
    assert players.keys() == {"browser sent", "browser received", "phone sent", "phone received"}
    for name, wav in players.items():
        assert wav == Path(result.audio[name.replace(" ", "_")]).read_bytes()  # type: ignore[arg-type]
        assert wav[:4] == b"RIFF" and len(wav) > 8000 * 2  # over a second of 8 kHz 16-bit audio
    # After hangup the dashboard shows the call's own analysis (the model place_call built).
    assert dashboard.model is result.model and dashboard.model is not None
    assert [s.label for s in dashboard.model.streams] and len(dashboard.plots.children) == 3
    assert "BYE" in [m.label for m in dashboard.model.messages]
    report = dashboard.export()
    assert report is not None and f"Call {result.call_id}" in report.read_text()
    assert str(report) in dashboard.export_link.value


async def test_the_phone_dials_through_the_chosen_network_and_the_dashboard_says_what_it_did(
    stack: Stack, mobile: MobilePhoneWidget
) -> None:
    await mobile.set_policy("after:0.3")
    dashboard = CallDashboard(stack.cfg)
    phone = PhoneWidget(stack.cfg, dashboard=dashboard)
    phone.form.impair.value = "mobile:to-phone:loss=150%"
    assert await phone.log_in()
    assert await phone.voice_call(NUMBER) is None and "loss=150%: must be from 0%" in phone.form.status.value
    phone.form.impair.value = "mobile:to-phone:loss=10%,seed=4"
    call = await phone.voice_call(NUMBER)
    assert call is not None and call.status == CALL_STATUS.ESTABLISHED
    assert phone.form.impair.disabled  # chosen for this call
    await asyncio.sleep(2)
    await phone.hang_up()
    result = await phone.wait_until_over()
    assert result is not None and result.ok
    assert [(r["leg"], r["direction"], r["spec"]) for r in result.impairments] == [
        ("mobile", "to-phone", "loss=10%,seed=4"),
        ("mobile", "to-browser", ""),  # the impaired leg's other direction: a perfect network
    ]
    assert "What the networks did" in dashboard.title.value and "loss=10%,seed=4" in dashboard.title.value
    assert not phone.form.impair.disabled


async def ringing(stack: Stack, mobile: MobilePhoneWidget) -> tuple[PhoneWidget, asyncio.Future[Call | None]]:
    """The Phone widget dials; the mobile phone rings until its own buttons decide."""
    await mobile.set_policy("manual")
    phone = PhoneWidget(stack.cfg)
    assert await phone.log_in()
    dialling = asyncio.ensure_future(phone.voice_call(NUMBER))
    await mobile.wait_for("ringing")
    return phone, dialling


async def test_mobile_phone_answers_and_hangs_up_first(stack: Stack, mobile: MobilePhoneWidget) -> None:
    phone, dialling = await ringing(stack, mobile)
    assert "call from VKP009" in mobile.screen.value and not mobile.answer_button.disabled
    await mobile.answer()
    call = await dialling
    assert call is not None and call.status == CALL_STATUS.ESTABLISHED
    await mobile.wait_for("in call")
    await mobile.hang_up()
    result = await phone.wait_until_over()
    assert result is not None and (result.final_status, result.reason) == ("FINISH", "remote hangup")


async def test_mobile_phone_rejects(stack: Stack, mobile: MobilePhoneWidget) -> None:
    phone, dialling = await ringing(stack, mobile)
    await mobile.reject()
    call = await dialling
    assert call is not None and (call.status, call.sip_code) == (CALL_STATUS.FAILED, 603)
    assert "FAILED 603" in phone.form.status.value


async def test_transfer_button_hands_the_phone_to_the_second_phone(
    stack: Stack, mobile: MobilePhoneWidget
) -> None:
    await mobile.set_policy("after:0.2")
    phone = PhoneWidget(stack.cfg)
    assert phone.form.transfer_button.disabled
    assert await phone.log_in()
    call = await phone.voice_call(NUMBER)
    assert call is not None and not phone.form.transfer_button.disabled
    await phone.transfer("+79990000002")
    assert await call.ended(timeout=10) == CALL_STATUS.FINISH
    assert call.reason == "transferred to +79990000002"
    assert any(e["event"] == "transfer" and e["code"] == 200 for e in call.events)
    await asyncio.sleep(0.5)  # the phones talk
    await phone_command(stack.cfg, stack.cfg.phone2, HangupCall())
    result = await phone.wait_until_over()
    assert result is not None and result.phone["answered"] is True


async def test_consult_then_transfer_joins_the_two_phones(stack: Stack, mobile: MobilePhoneWidget) -> None:
    await mobile.set_policy("after:0.2")
    phone = PhoneWidget(stack.cfg)
    assert await phone.log_in()
    call = await phone.voice_call(NUMBER)
    assert call is not None and not phone.form.consult_button.disabled
    consultation = await phone.consult("+79990000002")
    assert consultation is not None and consultation.status == CALL_STATUS.ESTABLISHED
    assert call.status == CALL_STATUS.HOLD and phone.form.consult_button.disabled
    await phone.transfer()
    assert await call.ended(timeout=10) == CALL_STATUS.FINISH
    assert call.reason == "transferred to +79990000002"
    assert await consultation.ended(timeout=10) == CALL_STATUS.FINISH
    assert consultation.reason == f"transferred: joined to {NUMBER}"
    await asyncio.sleep(0.5)  # the phones talk
    await phone_command(stack.cfg, stack.cfg.phone2, HangupCall())
    result = await phone.wait_until_over()
    assert result is not None and result.phone["answered"] is True


async def test_video_call_button_goes_on_as_voice_and_says_the_mobile_declined_the_video(
    phone: PhoneWidget, mobile: MobilePhoneWidget
) -> None:
    await mobile.set_policy("after:0.3")
    assert await phone.log_in()
    call = await phone.video_call(NUMBER)
    assert call is not None and call.status == CALL_STATUS.ESTABLISHED
    await eventually(lambda: "video" in phone.form.event.value, "the video event on the event line")
    assert "declined by the far end" in phone.form.event.value, phone.form.event.value
    await phone.hang_up()
    result = await phone.wait_until_over()
    assert result is not None and result.final_status == "FINISH"
    assert result.video is not None and result.video["declined"] is True
    assert result.codecs["browser"] == "opus"


@pytest.mark.skipif(videophone.find_binary() is None, reason="baresip is not installed (baresip-core)")
async def test_video_call_to_the_video_phone_shows_its_camera_in_the_widget(
    stack: Stack, phone: PhoneWidget
) -> None:
    assert await phone.log_in()
    call = await phone.video_call(stack.cfg.videophone_number)
    assert call is not None and call.status == CALL_STATUS.ESTABLISHED
    picture = phone.form.remote_video
    await eventually(lambda: picture.value[:2] == b"\xff\xd8", "a JPEG of the phone's camera", timeout=8)
    assert picture.layout.display == "" and "relays it" in phone.form.event.value
    assert Image.open(io.BytesIO(picture.value)).size == (320, 240)  # baresip's fakevideo
    await phone.hang_up()
    await eventually(lambda: picture.layout.display == "none", "the picture hidden after the call")


async def test_wrong_password_in_the_login_form(stack: Stack) -> None:
    phone = PhoneWidget(stack.cfg)
    phone.form.password.value = "wrong-password"
    assert not await phone.log_in()
    assert "login failed: 403" in phone.form.status.value and phone.form.voice_button.disabled
    assert phone.form.password.value == "" and "wrong-password" not in " ".join(phone.form.history)


def test_phone_widget_has_the_seed_phone_ui(stack: Stack) -> None:
    phone = PhoneWidget(stack.cfg)
    fields = [
        phone.form.login,
        phone.form.auth_name,
        phone.form.password,
        phone.form.domain,
        phone.form.outbound_proxy,
        phone.form.port,
    ]
    assert [f.description for f in fields] == [
        "login",
        "auth. name",
        "password",
        "domain",
        "outbound proxy",
        "port",
    ]
    assert phone.form.password.value == "" and stack.cfg.password not in repr(phone.widget)
    assert "".join(phone.form.keys) == "123456789*0#"
    labels = {
        b.description
        for b in (
            phone.form.voice_button,
            phone.form.video_button,
            phone.form.hangup_button,
            phone.form.hold_button,
            phone.form.transfer_button,
            phone.form.consult_button,
            phone.form.login_button,
        )
    }
    assert labels == {"Voice call", "Video call", "Hangup", "Hold", "Transfer", "Consult", "Log in"}
