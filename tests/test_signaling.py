"""The gateway's and the phone's JSON protocols: exact wire format, and errors that name the
field."""

from __future__ import annotations

import json

import pytest

from lab import phonecontrol as pc
from lab.signaling import (
    CLIENT_MESSAGES,
    GATEWAY_MESSAGES,
    CallStatus,
    Connect,
    DtmfEvent,
    Error,
    LoginForm,
    PlaceCall,
    Status,
    Transfer,
    TransferEvent,
    VideoEvent,
    status_text,
)
from lab.typedjson import MessageError


@pytest.mark.parametrize(
    ("msg", "wire"),
    [
        (
            Transfer(call_id="c1", target="+79161234567"),
            {"type": "transfer", "call_id": "c1", "target": "+79161234567"},
        ),
        (Transfer(call_id="c1", replaces="c2"), {"type": "transfer", "call_id": "c1", "replaces": "c2"}),
        (
            Connect(
                sip=LoginForm(
                    login="VKP009", auth_name="VKP009", password="pw", domain="d", outbound_proxy="p"
                )
            ),
            {
                "type": "connect",
                "sip": {
                    "login": "VKP009",
                    "auth_name": "VKP009",
                    "password": "pw",
                    "domain": "d",
                    "outbound_proxy": "p",
                    "port": 5060,
                },
            },
        ),
    ],
)
def test_client_messages_on_the_wire(msg: object, wire: dict[str, object]) -> None:
    text = CLIENT_MESSAGES.encode(msg)  # type: ignore[arg-type]
    assert json.loads(text) == wire
    assert CLIENT_MESSAGES.decode(text) == msg


@pytest.mark.parametrize(
    ("msg", "wire"),
    [
        (
            Status(call_id="c1", status=CallStatus.HOLD, sip_code=None, reason="on hold", t=1.5),
            {
                "type": "status",
                "call_id": "c1",
                "status": "HOLD",
                "sip_code": None,
                "reason": "on hold",
                "t": 1.5,
            },
        ),
        (Error(reason="no call 'x'"), {"type": "error", "reason": "no call 'x'"}),
        (
            DtmfEvent(call_id="c1", digit="5", method="info"),
            {"type": "event", "call_id": "c1", "event": "dtmf", "digit": "5", "method": "info"},
        ),
        (
            TransferEvent(call_id="c1", target="+7916", code=200, reason="OK", final=True),
            {
                "type": "event",
                "call_id": "c1",
                "event": "transfer",
                "target": "+7916",
                "code": 200,
                "reason": "OK",
                "final": True,
            },
        ),
    ],
)
def test_gateway_messages_on_the_wire(msg: object, wire: dict[str, object]) -> None:
    text = GATEWAY_MESSAGES.encode(msg)  # type: ignore[arg-type]
    assert json.loads(text) == wire
    assert GATEWAY_MESSAGES.decode(text) == msg


def test_a_call_message_with_defaults_left_out() -> None:
    msg = CLIENT_MESSAGES.decode('{"type": "call", "call_id": "c1", "callee": "+7916", "sdp": "v=0"}')
    assert msg == PlaceCall(call_id="c1", callee="+7916", sdp="v=0", visible_name="", headers={})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "client message is not JSON"),
        ("[1]", "client message is not a JSON object"),
        ('{"call_id": "c1"}', "client message has no 'type'"),
        ('{"type": 7}', "client message has no 'type'"),
        ('{"type": "status"}', "unknown client message type 'status'"),
        ('{"type": "call", "call_id": "c1", "callee": "+7916"}', "call.sdp: missing"),
        (
            '{"type": "call", "call_id": "c1", "callee": "+7916", "sdp": 5}',
            "call.sdp: expected a string, got 5",
        ),
        ('{"type": "hangup", "call_id": null}', "hangup.call_id: expected a string, got null"),
        ('{"type": "reject", "call_id": "c", "code": true}', "reject.code: expected an integer, got true"),
        (
            '{"type": "call", "call_id": "c", "callee": "1", "sdp": "", "headers": {"X-A": 1}}',
            "call.headers.X-A: expected a string, got 1",
        ),
        ('{"type": "connect", "sip": {"login": "a", "domain": "d"}}', "connect.sip.password: missing"),
        (
            '{"type": "connect", "sip": {"login": "a", "password": "p", "domain": "d", "port": "5060"}}',
            "connect.sip.port: expected an integer, got '5060'",
        ),
        ("[" * 100_000, "client message is nested too deeply"),
        (
            '{"type": "ping", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "client message is nested too deeply",
        ),
    ],
)
def test_bad_client_messages_name_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(MessageError) as info:
        CLIENT_MESSAGES.decode(text)
    assert str(info.value) == error


def test_gateway_events_are_told_apart_by_their_event_field() -> None:
    with pytest.raises(MessageError) as info:
        GATEWAY_MESSAGES.decode('{"type": "event", "call_id": "c1", "event": "flash"}')
    assert str(info.value) == "event: expected event='dtmf' or event='transfer' or event='video'"
    said = GATEWAY_MESSAGES.decode(
        '{"type": "event", "call_id": "c1", "event": "video", "declined": true, "reason": "r", "t": 1.5}'
    )
    assert said == VideoEvent(call_id="c1", declined=True, reason="r", t=1.5)
    with pytest.raises(MessageError) as info:
        GATEWAY_MESSAGES.decode(
            '{"type": "status", "call_id": "c", "status": "UP", "sip_code": 1, "reason": "", "t": 0}'
        )
    assert str(info.value).startswith("status.status: expected one of 'PENDING', 'TRYING'")
    assert str(info.value).endswith(", got 'UP'")


def test_phone_commands_and_events() -> None:
    dial = pc.Dial(to="VKP009", call_id="c1", caller="+79990000001")
    assert json.loads(pc.COMMANDS.encode(dial)) == {
        "cmd": "dial",
        "to": "VKP009",
        "call_id": "c1",
        "from": "+79990000001",
    }
    assert pc.COMMANDS.decode('{"cmd": "dial", "to": "VKP009", "from": "+7999"}') == pc.Dial(
        to="VKP009", caller="+7999"
    )
    assert json.loads(pc.COMMANDS.encode(pc.HangupCall())) == {"cmd": "hangup"}
    ringing = pc.Ringing(number="+7916", caller="VKP009", call_id=None, policy="after:1")
    assert pc.as_dict(ringing) == {
        "event": "incoming",
        "number": "+7916",
        "caller": "VKP009",
        "call_id": None,
        "policy": "after:1",
    }
    assert pc.EVENTS.decode(pc.EVENTS.encode(ringing)) == ringing
    with pytest.raises(MessageError) as info:
        pc.COMMANDS.decode('{"cmd": "policy"}')
    assert str(info.value) == "policy.value: missing"
    with pytest.raises(MessageError) as info:
        pc.COMMANDS.decode('{"cmd": "explode"}')
    assert str(info.value) == "unknown phone message cmd 'explode'"


def test_status_text_leaves_out_what_is_unknown() -> None:
    assert status_text(CallStatus.FINISH, 200, "hangup") == "FINISH 200 hangup"
    assert status_text(CallStatus.FAILED, 486, "Busy Here") == "FAILED 486 Busy Here"
    assert status_text("RING", None, "") == "RING"
    assert status_text(CallStatus.FAILED, None, "no answer") == "FAILED no answer"
