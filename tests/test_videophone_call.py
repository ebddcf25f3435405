"""End to end: the browser-style client calls the lab's video phone (baresip, user 1001)
through the gateway and the SIP server's registrar."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from lab.analysis.ladder import ladder_rows
from lab.audio import best_match, heard_match, read_wav
from lab.scenario import place_call
from lab.sip import videophone
from lab.stack import Stack

if TYPE_CHECKING:
    from conftest import PhoneScreen

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(videophone.find_binary() is None, reason="baresip is not installed (baresip-core)"),
]


async def test_an_audio_call_to_the_video_phone_is_answered_and_it_hears_the_browser(stack: Stack) -> None:
    cfg = stack.cfg
    known = videophone.recordings(cfg)
    result = await place_call(cfg, cfg.videophone_number, duration=4.0)
    assert result.ok, result
    # baresip answers at once: its 180 and 200 may reach the gateway in either order.
    assert [s["status"] for s in result.statuses if s["status"] != "RING"] == [
        "PENDING",
        "TRYING",
        "ESTABLISHED",
        "FINISH",
    ]
    assert result.sip_code == 200 and result.reason == "hangup"
    assert result.setup_ms is not None and 0 < result.setup_ms < 1000  # it answers at once
    assert result.model is not None
    sip = [(r.src, r.dst, r.label) for r in ladder_rows(result.model) if r.src != r.dst]
    to_phone = [(src, label) for src, dst, label in sip if "Video phone" in (src, dst)]
    answered = ("Video phone", "200 Answering (INVITE)")  # baresip's words for its auto-answer
    assert to_phone[0] == ("SIP server", "INVITE") and answered in to_phone
    assert to_phone.index(answered) < to_phone.index(("SIP server", "BYE"))
    assert ("SIP server", "INVITE") not in to_phone[1:]  # no re-INVITE (pjsua's codec lock is off)
    assert to_phone[-1] == ("Video phone", "200 OK (BYE)")
    assert {(s.src_party, s.dst_party, s.codec) for s in result.model.streams} >= {
        ("Gateway", "Video phone", "PCMU"),
        ("Video phone", "Gateway", "PCMU"),
    }
    heard, rate = read_wav(await videophone.next_recording(cfg, known))
    assert rate == 8000 and len(heard) > 2 * rate
    browser_prompt, _ = read_wav(cfg.prompts_dir / "browser.wav")
    phone_prompt, _ = read_wav(cfg.prompts_dir / "phone.wav")
    assert heard_match(browser_prompt, heard) > 0.85
    assert best_match(phone_prompt, heard).correlation < 0.75  # not its own prompt, nor silence
    at_browser, _ = read_wav(result.audio["browser_received"])  # type: ignore[arg-type]
    assert heard_match(phone_prompt, at_browser) > 0.85


async def test_a_call_to_the_video_phone_while_it_is_down_says_so(stack: Stack) -> None:
    stack.kill("Video phone")  # baresip unregisters as it goes, as when it is not installed
    try:
        result = await place_call(stack.cfg, stack.cfg.videophone_number, duration=1.0)
        assert (result.final_status, result.sip_code) == ("FAILED", 480)
        assert "video phone 1001 is not registered" in result.reason
    finally:
        await stack.restart("Video phone")


async def test_a_video_call_to_the_video_phone_carries_vp8_both_ways(
    stack: Stack, phone_screen: PhoneScreen
) -> None:
    """The browser offers VP8 and H.264; baresip takes VP8; the gateway relays it between the
    browser's SRTP and the phone's RTP: each end decodes the other's test pattern."""
    cfg = stack.cfg
    # 6 s: baresip's status line gives frame rates from its fifth second on
    result = await place_call(
        cfg, cfg.videophone_number, duration=6.0, video=True, on_status=phone_screen.on_status
    )
    assert result.ok and result.model is not None, result
    assert result.video is not None and result.video["declined"] is False, result.video
    assert result.video["reason"] == "the far end (Video phone) took video (VP8); the gateway relays it"
    # The browser decoded the phone's test pattern (fakevideo, 25 fps) ...
    assert result.video["size"] == "320x240" and result.video["frames_received"] > 4 * 15, result.video
    # ... and the phone the browser's (ColourBarCamera, 320x240, 30 fps).
    assert await phone_screen.size() == (320, 240)
    rates = videophone.frame_rates(cfg)
    assert rates is not None and rates[0] > 20 and rates[1] > 20, rates  # sent, received
    notes = {(r.src, r.dst, r.label): r.note for r in ladder_rows(result.model)}
    assert "video VP8 sendrecv" in notes["Gateway", "Browser", "SDP answer"]
    assert notes["Video phone", "SIP server", "200 Answering (INVITE)"].endswith("; video VP8 sendrecv")
    video_streams = {(s.src_party, s.dst_party): s for s in result.model.streams if s.codec == "VP8"}
    assert set(video_streams) == {
        ("Browser", "Gateway"),
        ("Gateway", "Video phone"),
        ("Video phone", "Gateway"),
        ("Gateway", "Browser"),
    }
    for stream in video_streams.values():
        assert stream.stats.packets > 50, stream.label
    browser_prompt, _ = read_wav(cfg.prompts_dir / "browser.wav")
    phone_prompt, _ = read_wav(cfg.prompts_dir / "phone.wav")
    at_browser, _ = read_wav(result.audio["browser_received"])  # type: ignore[arg-type]
    assert heard_match(phone_prompt, at_browser) > 0.85


async def test_a_video_call_held_and_resumed_shows_video_and_outlasts_the_phones_prompt(stack: Stack) -> None:
    """Hold re-offers the video (pjsua's re-offer names 127.0.0.1 for it: the gateway keeps
    its own address), and the call outlasts the phone's 6.6 s prompt (looped, else baresip
    hangs up when its file ends)."""
    cfg = stack.cfg
    result = await place_call(cfg, cfg.videophone_number, duration=8.0, video=True, hold=2.0)
    assert result.ok and result.model is not None, result
    assert [s["status"] for s in result.statuses][-4:] == ["ESTABLISHED", "HOLD", "ESTABLISHED", "FINISH"]
    assert result.reason == "hangup", result.reason  # ours, not the phone's
    assert result.video is not None and result.video["frames_received"] > 100, result.video
    packets = {(s.src_party, s.dst_party): s.stats.packets for s in result.model.streams if s.codec == "VP8"}
    assert packets[("Video phone", "Gateway")] > 200 and packets[("Gateway", "Browser")] > 200, packets
