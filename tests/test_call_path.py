"""End to end through the real lab: client -> gateway -> Kamailio -> PSTN gateway -> phone."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from lab.analysis.call_steps import webrtc_steps
from lab.analysis.ladder import ladder_rows
from lab.analysis.wireshark import fields
from lab.audio import best_match, heard_match, pesq_nb, read_wav
from lab.client import LoginFailed, Session
from lab.config import PhonePolicy
from lab.scenario import CallResult, place_call
from lab.stack import Stack, gateway_ping

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
PESQ_FLOOR = 2.0  # Opus -> PCMU -> GSM 06.10 and back; the chain's ceiling is ~2.9


def statuses(result: CallResult) -> list[str]:
    return [s["status"] for s in result.statuses]


def heard(result: CallResult, side: str) -> tuple[object, ...]:
    assert result.audio[f"{side}_received"], f"no recording from the {side}"
    samples, _ = read_wav(Path(result.audio[f"{side}_received"]))  # type: ignore[arg-type]
    return samples


async def test_call_reaches_the_phone_and_both_sides_talk(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=4.0, answer=PhonePolicy("answer", 0.5))
    assert result.ok, result
    assert statuses(result) == ["PENDING", "TRYING", "RING", "ESTABLISHED", "FINISH"]
    assert result.sip_code == 200 and result.reason == "hangup"
    assert result.phone["answered"] is True and result.phone["number"] == NUMBER
    assert result.setup_ms is not None and 0 < result.setup_ms < 1000

    prompts = stack.cfg.prompts_dir
    browser_prompt, _ = read_wav(prompts / "browser.wav")
    phone_prompt, _ = read_wav(prompts / "phone.wav")
    at_phone, at_browser = heard(result, "phone"), heard(result, "browser")
    # Each side hears the other's prompt, not its own (and not silence).
    assert heard_match(browser_prompt, at_phone) > 0.85
    assert best_match(phone_prompt, at_phone).correlation < 0.75
    assert heard_match(phone_prompt, at_browser) > 0.85
    assert best_match(browser_prompt, at_browser).correlation < 0.75
    assert pesq_nb(browser_prompt, at_phone) > PESQ_FLOOR
    assert pesq_nb(phone_prompt, at_browser) > PESQ_FLOOR


async def test_every_call_leaves_a_capture_and_a_report(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=2.0, answer=PhonePolicy("answer", 0.3))
    assert result.ok and result.capture and result.report and result.model, result
    model = result.model
    invites = [(m.src_party, m.dst_party) for m in model.messages if m.method == "INVITE" and m.is_request]
    assert invites[-3:] == [
        ("Gateway", "SIP server"),
        ("SIP server", "PSTN gateway"),
        ("PSTN gateway", "Mobile phone"),
    ]
    ladder = [(m.label, m.method) for m in model.messages]
    invite, ringing, ok = ("INVITE", "INVITE"), ("180 Ringing", "INVITE"), ("200 OK", "INVITE")
    assert ladder.index(invite) < ladder.index(ringing) < ladder.index(ok) < ladder.index(("BYE", "BYE"))
    assert ladder[-1] in (("200 OK", "BYE"), ("200 OK", "REGISTER"))  # the capture runs past the last BYE/200
    # No impairment asked: the media takes the direct path, no network party in between.
    legs = {("Browser", "Gateway"), ("Gateway", "PSTN gateway"), ("PSTN gateway", "Mobile phone")}
    assert {(s.src_party, s.dst_party) for s in model.streams} == legs | {(b, a) for a, b in legs}
    # Every leg has Wireshark's jitter: the browser leg's audio marks only its first packet.
    for stream in model.streams:
        assert stream.stats.why_no_jitter == "" and 0 <= stream.stats.mean_jitter_ms < 10, stream.label
    # The gateway's SDP answer to the browser waits for its ICE candidates, so it may come
    # before or after the phone's 180: only the call's own steps have a fixed order.
    steps = [e.label for e in model.events]
    call_steps = [s.split()[0] for s in steps if not s.startswith("SDP")]
    assert call_steps[-4:] == ["RING", "ESTABLISHED", "hangup()", "FINISH"]
    assert steps.index("SDP offer") < steps.index("SDP answer") < steps.index("hangup()")
    assert {p.direction for p in model.pesq} == {"Browser -> Mobile phone", "Mobile phone -> Browser"}
    # The browser leg's own setup: offer and answer over the WebSocket, an ICE check, the DTLS
    # handshake, all before its first SRTP packet.
    rows = ladder_rows(model)
    labels = [r.label for r in rows]
    srtp = [s for s in model.streams if model.srtp(s)]
    assert {(s.src_party, s.dst_party) for s in srtp} == {("Browser", "Gateway"), ("Gateway", "Browser")}
    first_srtp = min(s.stats.start for s in srtp) - model.start
    setup = [
        next(r for r in rows if r.label == "SDP offer"),
        next(r for r in rows if r.label == "SDP answer"),
        next(r for r in rows if r.label.startswith("STUN Binding Request")),
        next(r for r in rows if r.label == "STUN Binding Success Response"),
        next(r for r in rows if r.label == "DTLS ClientHello"),
        next(r for r in rows if r.label.startswith("DTLS ServerHello")),
        *[r for r in rows if r.label.startswith("DTLS") and r.label.endswith("Finished (encrypted)")],
    ]
    assert len(setup) == 8 and all(r.t < first_srtp for r in setup), [(r.label, r.t) for r in setup]
    assert setup[0].t < setup[1].t and setup[4].t < setup[5].t < setup[6].t <= setup[7].t
    assert "STUN Binding Request, USE-CANDIDATE" in labels
    # The same STUN and DTLS datagrams as Wireshark's dissection, with the same messages.
    wireshark = fields(result.capture, "stun || dtls", "frame.number", "stun.type", "dtls.handshake.type")
    ours = [
        (
            p.frame,
            f"0x{p.stun.type:04x}" if p.stun else "",
            ",".join(str(r.handshake.type) for r in p.dtls if r.handshake),
        )
        for p in model.webrtc
    ]
    assert ours == [(int(f), stun_type, handshake) for f, stun_type, handshake in wireshark]
    assert "ICE host udp 127.0.0.1:" in setup[0].note and "DTLS setup actpass, sha-256" in setup[0].note
    assert "DTLS setup active" in setup[1].note
    assert [s.number for s in webrtc_steps(model) if s.row is not None] == [f"W{k}" for k in range(1, 8)]
    logged = json.loads((Path(result.capture).with_suffix("") / "call.json").read_text())["webrtc_sdp"]
    assert [(x["from"], x["kind"]) for x in logged] == [("browser", "offer"), ("gateway", "answer")]
    assert all("a=ice-pwd:[redacted]" in x["sdp"] for x in logged)
    html = Path(result.report).read_text()
    assert stack.cfg.password not in html and stack.cfg.password not in Path(
        result.capture
    ).read_bytes().decode("latin-1")


async def test_a_video_call_to_a_mobile_goes_on_as_voice(stack: Stack) -> None:
    """The browser offers VP8 and H.264; the gateway offers them on the SIP leg, the PSTN
    gateway declines (port 0), the browser is answered video port 0, and both sides talk."""
    result = await place_call(stack.cfg, NUMBER, duration=2.0, answer=PhonePolicy("answer", 0.3), video=True)
    assert result.ok and result.model is not None, result
    assert result.video is not None and result.video["declined"] is True, result.video
    assert result.video["reason"] == (
        "video declined by the far end (PSTN gateway: port 0 in its SDP answer); the call goes on as voice"
    )
    assert any(e["what"].startswith("video: video declined by the far end") for e in result.events)
    notes = {(r.src, r.dst, r.label): r.note for r in ladder_rows(result.model)}
    assert "video VP8,rtx,H264" in notes["Browser", "Gateway", "SDP offer"]
    assert "audio opus sendrecv; video declined (port 0)" in notes["Gateway", "Browser", "SDP answer"]
    assert (
        notes["Gateway", "SIP server", "INVITE"] == "audio PCMU,PCMA sendrecv; video VP8,H264,H264 sendrecv"
    )
    assert notes["SIP server", "Gateway", "200 OK (INVITE)"] == "audio PCMU sendrecv; video declined (port 0)"
    assert {s.codec for s in result.model.streams} == {"opus", "PCMU", "GSM"}  # no video on any leg
    browser_prompt, _ = read_wav(stack.cfg.prompts_dir / "browser.wav")
    phone_prompt, _ = read_wav(stack.cfg.prompts_dir / "phone.wav")
    assert heard_match(browser_prompt, heard(result, "phone")) > 0.85
    assert heard_match(phone_prompt, heard(result, "browser")) > 0.85


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
async def test_g711_on_the_webrtc_leg(stack: Stack, codec: str) -> None:
    result = await place_call(
        stack.cfg, "89991234567", duration=2.0, answer=PhonePolicy("answer", 0), codec=codec
    )
    assert result.ok, result
    browser_prompt, _ = read_wav(stack.cfg.prompts_dir / "browser.wav")
    assert heard_match(browser_prompt, heard(result, "phone")) > 0.85


async def test_wrong_password_fails_with_403(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, password="not-the-password")
    assert (result.final_status, result.sip_code) == ("FAILED", 403)
    assert "authentication failed" in result.reason
    assert "not-the-password" not in result.to_json()


async def test_a_from_user_that_is_not_the_auth_user_is_told_so(stack: Stack) -> None:
    """The right password of VKP009, but the form's login (the From user) is someone else."""
    account = dataclasses.replace(stack.cfg.account(), login="somebody", auth_name=stack.cfg.login)
    session = Session(stack.cfg.ws_url, account, host=stack.cfg.browser.host)
    with pytest.raises(LoginFailed) as refused:
        await session.connect()
    await session.disconnect()
    assert refused.value.code == 403 and "authentication failed" not in refused.value.reason
    assert refused.value.reason.endswith("(403 Forbidden - the From user is not the authentication user)")


async def test_unrouted_number_fails_with_404(stack: Stack) -> None:
    result = await place_call(stack.cfg, "12345")
    assert (result.final_status, result.sip_code) == ("FAILED", 404)
    assert statuses(result) == ["PENDING", "TRYING", "FAILED"]


@pytest.mark.parametrize(
    ("policy", "final", "code"),
    [("busy", "BUSY", 486), ("reject", "FAILED", 603)],
)
async def test_phone_refuses(stack: Stack, policy: str, final: str, code: int) -> None:
    result = await place_call(stack.cfg, NUMBER, answer=PhonePolicy.parse(policy))
    assert (result.final_status, result.sip_code) == (final, code)
    assert "ESTABLISHED" not in statuses(result)


async def test_caller_gives_up_while_it_rings(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, answer=PhonePolicy("never"), ring_timeout=1.5)
    assert statuses(result)[-2:] == ["RING", "FAILED"]
    assert result.sip_code == 487 and "cancelled" in result.reason


@pytest.mark.parametrize("number", ["123@evil.example;transport=tcp", "abc", "1\r\nVia: x", "1" * 40])
async def test_malformed_number_is_refused_before_any_sip(stack: Stack, number: str) -> None:
    result = await place_call(stack.cfg, number)
    assert result.final_status == "FAILED" and result.sip_code is None
    assert "is not a phone number" in result.reason
    assert result.statuses == []  # nothing was sent: not even PENDING


async def test_the_lab_serves_the_next_call_after_failures(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=1.0, answer=PhonePolicy("answer", 0))
    assert result.ok, result
    # Every call of this module ran one after the other: the gateway lent each the same
    # media port again (a freed port, still called by the bridge clock, killed the gateway).
    pong = await gateway_ping(stack.cfg.ws_url)
    assert (pong.active_calls, pong.media_ports) == (0, 1)


async def test_sip_server_down_fails_fast_naming_it(stack: Stack) -> None:
    stack.kill("SIP server")  # stays down: the supervisor restarts only what died by itself
    t0 = time.monotonic()
    result = await place_call(stack.cfg, NUMBER)
    assert time.monotonic() - t0 < 10
    assert result.final_status == "FAILED"
    assert "SIP server" in result.reason and stack.cfg.sipserver.sip_address in result.reason
