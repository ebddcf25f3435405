"""The seed's SIP functions end to end: DTMF, hold, the phone's answers and calls to the
browser user, each seen by the phone and on the wire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.analysis.recorded_call import analyze
from lab.audio import best_match, heard_match, read_wav
from lab.config import PhonePolicy
from lab.phonecontrol import SetPolicy
from lab.scenario import phone_command, place_call, receive_call
from lab.stack import Stack

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
NOW = PhonePolicy("answer", 0.0)


@pytest.mark.parametrize("method", ["rfc4733", "info"])
async def test_dtmf_reaches_the_phone_in_order(stack: Stack, method: str) -> None:
    result = await place_call(
        stack.cfg, NUMBER, duration=2.0, answer=NOW, dtmf="0123456789*#ABCD", dtmf_method=method, report=False
    )
    assert result.ok, result
    assert result.phone["dtmf_received"] == "0123456789*#ABCD"
    assert {e["method"] for e in result.phone["events"] if e["event"] == "dtmf"} == {method}
    if method == "info":
        model = analyze(result.capture, stack.cfg, with_pesq=False)  # type: ignore[arg-type]
        infos = [(m.src_party, m.dst_party) for m in model.messages if m.method == "INFO" and m.is_request]
        for hop in (
            ("Gateway", "SIP server"),
            ("SIP server", "PSTN gateway"),
            ("PSTN gateway", "Mobile phone"),
        ):
            assert infos.count(hop) == 16, hop


async def test_hold_and_resume_through_the_chain(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=3.0, answer=NOW, hold=1.0, report=False)
    assert result.ok, result
    assert result.phone["answered_by"] == "Mobile phone 127.0.0.5"
    whats = [e["what"] for e in result.events]
    assert whats.index("hold()") < whats.index("status HOLD on hold") < whats.index("unhold()")
    assert "held" in whats and "resumed" in whats
    statuses = [(s["status"], s["reason"]) for s in result.statuses]
    assert statuses[3:6] == [("ESTABLISHED", "OK"), ("HOLD", "on hold"), ("ESTABLISHED", "resumed")]
    assert [e["event"] for e in result.phone["events"]] == ["held", "resumed"]
    model = analyze(result.capture, stack.cfg, with_pesq=False)  # type: ignore[arg-type]
    reinvites = [m for m in model.messages if m.method == "INVITE" and m.is_request and m.sdp]
    held = [(m.src_party, m.dst_party) for m in reinvites if m.sdp[0].direction == "sendonly"]
    assert held == [
        ("Gateway", "SIP server"),
        ("SIP server", "PSTN gateway"),
        ("PSTN gateway", "Mobile phone"),
    ]
    resumed = [m for m in reinvites if m.sdp[0].direction == "sendrecv"]
    assert len(resumed) >= 6  # the call's INVITEs, then the resume through all three hops


async def test_bad_dtmf_is_refused_before_dialling(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, dtmf="12x")
    assert result.final_status == "FAILED" and "DTMF digits" in result.reason and result.statuses == []


async def test_number_policy_from_the_lab_config(stack: Stack) -> None:
    # No answer= here: the phone process reads LabConfig.number_policies from the lab's config
    # (conftest's lab_config sets one busy and one rejecting number).
    by_policy = {policy: number for number, policy in stack.cfg.number_policies.items()}
    busy = await place_call(stack.cfg, by_policy["busy"], report=False)
    assert (busy.final_status, busy.sip_code) == ("BUSY", 486)
    rejected = await place_call(stack.cfg, by_policy["reject"], report=False)
    assert (rejected.final_status, rejected.sip_code) == ("FAILED", 603)
    other = await place_call(stack.cfg, NUMBER, duration=0.5, report=False)
    assert other.ok and other.phone["answered"] is True


async def test_incoming_call_answered_talks_both_ways(stack: Stack) -> None:
    result = await receive_call(stack.cfg, caller="+79990000001", duration=3.0)
    assert result.ok, result
    assert [s["status"] for s in result.statuses] == ["RING", "ESTABLISHED", "FINISH"]
    assert result.statuses[0]["reason"] == "incoming call from +79990000001"
    assert result.phone["caller"] == "+79990000001"
    browser_prompt, _ = read_wav(stack.cfg.prompts_dir / "browser.wav")
    phone_prompt, _ = read_wav(stack.cfg.prompts_dir / "phone.wav")
    at_phone, _ = read_wav(Path(result.audio["phone_received"]))  # type: ignore[arg-type]
    at_browser, _ = read_wav(Path(result.audio["browser_received"]))  # type: ignore[arg-type]
    assert heard_match(browser_prompt, at_phone) > 0.85
    assert heard_match(phone_prompt, at_browser) > 0.85
    model = analyze(result.capture, stack.cfg, with_pesq=False)  # type: ignore[arg-type]
    invites = [(m.src_party, m.dst_party) for m in model.messages if m.method == "INVITE" and m.is_request]
    assert invites == [
        ("Mobile phone", "PSTN gateway"),
        ("PSTN gateway", "SIP server"),
        ("SIP server", "Gateway"),
    ]
    # Called, the browser is the WebRTC answerer: the gateway's offer, its answer, on the ladder.
    sdp = [(e.src_party, e.dst_party, e.label) for e in model.events if e.label.startswith("SDP")]
    assert sdp == [("Gateway", "Browser", "SDP offer"), ("Browser", "Gateway", "SDP answer")]
    assert any(p.stun is not None and p.stun.use_candidate for p in model.webrtc)


@pytest.mark.parametrize(
    ("code", "status", "reason"), [(603, "FAILED", "rejected (Decline)"), (486, "BUSY", "Busy Here")]
)
async def test_incoming_call_rejected(stack: Stack, code: int, status: str, reason: str) -> None:
    result = await receive_call(stack.cfg, reject=code, report=False)
    assert (result.final_status, result.sip_code, result.reason) == (status, code, reason)
    phone_log = json.loads((stack.cfg.captures_dir / result.call_id / "phone.json").read_text())
    assert phone_log["end_code"] == code and phone_log["answered"] is False


async def test_blind_transfer_to_the_second_phone(stack: Stack) -> None:
    result = await place_call(stack.cfg, NUMBER, duration=2.0, answer=NOW, transfer="+79990000002")
    assert result.transfer == {"target": "+79990000002", "attended": False, "code": 200, "reason": "OK"}
    assert (result.final_status, result.reason) == ("FINISH", "transferred to +79990000002")
    model = analyze(result.capture, stack.cfg, with_pesq=False)  # type: ignore[arg-type]
    hops = [(m.src_party, m.dst_party, m.label) for m in model.messages if not m.retransmission]
    for hop in (
        ("Gateway", "SIP server", "REFER"),
        ("SIP server", "PSTN gateway", "REFER"),
        ("PSTN gateway", "SIP server", "INVITE"),
        ("SIP server", "Mobile phone 2", "INVITE"),
        ("Mobile phone 2", "SIP server", "200 OK"),
        ("PSTN gateway", "SIP server", "NOTIFY"),
    ):
        assert hop in hops, hop
    # The first phone talked on, with the second, until the second hung up.
    assert result.phone["answered"] is True
    # Ended by the BYE of the second phone, not by a failure or the transfer itself:
    assert (result.phone["end_code"], result.phone["end_reason"]) == (200, "Normal call clearing")


async def test_transfer_to_a_busy_phone_keeps_the_call(stack: Stack) -> None:
    await phone_command(stack.cfg, stack.cfg.phone2, SetPolicy(value="busy"))
    try:
        result = await place_call(
            stack.cfg, NUMBER, duration=2.0, answer=NOW, transfer="+79990000002", report=False
        )
    finally:
        await phone_command(stack.cfg, stack.cfg.phone2, SetPolicy(value="after:1"))
    assert result.transfer == {
        "target": "+79990000002",
        "attended": False,
        "code": 486,
        "reason": "Busy Here",
    }
    assert result.ok and result.reason == "hangup"  # still up after the failed transfer, hung up normally


@pytest.mark.parametrize("attended", [False, True])
async def test_malformed_transfer_target_is_refused_before_any_sip(stack: Stack, attended: bool) -> None:
    result = await place_call(stack.cfg, NUMBER, transfer="sip:x@evil.example", attended=attended)
    assert (result.final_status, result.statuses) == ("FAILED", [])
    assert "is not a phone number" in result.reason


@pytest.mark.parametrize("attended", [False, True])
async def test_transfer_to_an_unknown_number_keeps_the_call(stack: Stack, attended: bool) -> None:
    result = await place_call(
        stack.cfg, NUMBER, duration=1.0, answer=NOW, transfer="5551234", attended=attended, report=False
    )
    assert result.transfer is not None
    reason = "the consultation call failed: Not Found" if attended else "Not Found"
    assert (result.transfer["code"], result.transfer["reason"]) == (404, reason)
    assert result.ok and result.reason == "hangup"


async def test_attended_transfer_joins_the_two_phones(stack: Stack) -> None:
    """Hold, consultation call to the second phone, REFER with Replaces: the two phones talk."""
    cfg = stack.cfg
    result = await place_call(cfg, NUMBER, duration=1.0, answer=NOW, transfer="+79990000002", attended=True)
    assert (result.final_status, result.reason) == ("FINISH", "transferred to +79990000002")
    transfer = result.transfer
    assert transfer is not None and (transfer["code"], transfer["attended"]) == (200, True)
    consultation = transfer["consultation"]
    assert (consultation["final_status"], consultation["reason"]) == (
        "FINISH",
        f"transferred: joined to {NUMBER}",
    )
    assert [s["status"] for s in result.statuses][-2:] == ["HOLD", "FINISH"]

    # On the wire: the REFER names the consultation's dialog in its Replaces; the channel
    # holding the first call sends the INVITE with Replaces to the channel holding the
    # consultation, which takes it over and ends the consultation leg (BYE).
    model = analyze(result.capture, cfg, with_pesq=False)  # type: ignore[arg-type]
    messages = [m for m in model.messages if not m.retransmission]
    consultation_id = next(
        m.call_id for m in messages if m.lab_call == consultation["call_id"] and m.method == "INVITE"
    )
    refer = next(m for m in messages if m.label == "REFER" and m.src_party == "Gateway")
    assert f"Replaces={consultation_id}" in refer.raw.replace("%40", "@").replace("%3B", ";")
    replacing = next(m for m in messages if m.label == "INVITE" and "\r\nReplaces: " in m.raw)
    assert (replacing.src_party, replacing.dst_party) == ("PSTN gateway", "PSTN gateway")
    assert f"Replaces: {consultation_id};" in replacing.raw
    assert any(m.label == "NOTIFY" and "SIP/2.0 200" in m.raw for m in messages)
    bye = next(m for m in messages if m.label == "BYE" and m.call_id == consultation_id)
    assert (bye.src_party, bye.t > replacing.t) == ("PSTN gateway", True)

    # Each phone hears the other's prompt once they are joined, not the browser's.
    phone_prompt, _ = read_wav(cfg.prompts_dir / "phone.wav")
    browser_prompt, _ = read_wav(cfg.prompts_dir / "browser.wav")
    for call_id in (result.call_id, consultation["call_id"]):
        heard, _ = read_wav(cfg.captures_dir / call_id / "phone_received.wav")
        assert heard_match(phone_prompt, heard) > 0.85, call_id
        assert best_match(browser_prompt, heard).correlation < 0.75, call_id


async def test_attended_transfer_to_a_busy_phone_resumes_the_call(stack: Stack) -> None:
    await phone_command(stack.cfg, stack.cfg.phone2, SetPolicy(value="busy"))
    try:
        result = await place_call(
            stack.cfg, NUMBER, duration=1.0, answer=NOW, transfer="+79990000002", attended=True, report=False
        )
    finally:
        await phone_command(stack.cfg, stack.cfg.phone2, SetPolicy(value="after:1"))
    transfer = result.transfer
    assert transfer is not None
    assert (transfer["code"], transfer["reason"]) == (486, "the consultation call failed: Busy Here")
    assert transfer["consultation"]["final_status"] == "BUSY"
    assert [s["status"] for s in result.statuses][-3:] == ["HOLD", "ESTABLISHED", "FINISH"]
    assert result.ok and result.reason == "hangup"
