"""Every pjsua2 party answers the requests pjsua has no module for (RFC 3261 section 8.2.1), as
a foreign client sends them over UDP, and goes on carrying calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.config import Party
from lab.scenario import place_call
from lab.sip import badrequest
from lab.sip.endpoint import unhandled_answer
from lab.sip.message import parse_sip
from lab.sip.options import exchange, request
from lab.stack import Stack

CLIENT = "127.0.0.1"  # a foreign client, from the lab's browser address (its capture keeps it)

PJSUA_ALLOW = "PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS"
#: method -> (status code, Allow header or None), outside any dialog
EXPECTED = {
    "FOO": (501, None),
    "X-CALLLAB-" + "LONG" * 40: (501, None),
    "PUBLISH": (405, PJSUA_ALLOW),
    "REGISTER": (405, PJSUA_ALLOW),
    "INFO": (481, None),
    "BYE": (481, None),
    "NOTIFY": (481, None),
    "REFER": (603, None),
}


def test_the_answer_follows_the_method() -> None:
    assert [unhandled_answer(m) for m in ("ACK", "FOO", "foo", "PUBLISH", "REGISTER", "INFO", "CANCEL")] == [
        None,
        501,
        501,  # methods are case-sensitive (RFC 3261 section 7.1): "foo" is not a known one
        405,
        405,
        481,
        481,
    ]
    assert unhandled_answer("REFER") == 603


def pjsua_parties(stack: Stack) -> list[Party]:
    cfg = stack.cfg
    return [*cfg.pstn_channels, *cfg.phones, cfg.gateway]


def asking(party: Party, method: str) -> Callable[[tuple[str, int]], bytes]:
    return lambda local: request(method, party.host, party.sip_port, local)


async def answer(party: Party, method: str) -> tuple[int, str | None]:
    raw = await exchange(party.host, party.sip_port, asking(party, method), source=CLIENT)
    msg = parse_sip(raw)
    assert msg is not None and msg.status is not None, raw
    return msg.status, msg.headers.get("allow")


@pytest.mark.slow
async def test_each_party_answers_what_no_module_takes_and_goes_on(stack: Stack) -> None:
    wrong = []
    for party in pjsua_parties(stack):
        for method, expected in EXPECTED.items():
            got = await answer(party, method)
            if got != expected:
                wrong.append(f"{party.name} {party.sip_address}: {method[:20]} -> {got}, expected {expected}")
        with pytest.raises(TimeoutError):  # a stray ACK is never answered
            await exchange(party.host, party.sip_port, asking(party, "ACK"), timeout=0.3, source=CLIENT)
        options = parse_sip(await exchange(party.host, party.sip_port, source=CLIENT))
        assert options is not None and options.headers.get("allow") == PJSUA_ALLOW, party.name
    assert not wrong, "\n".join(wrong)
    assert all(p.proc is not None and p.proc.poll() is None for p in stack.parties)
    result = await place_call(stack.cfg, "+79161234567", duration=1.0, capture=False, report=False)
    assert result.ok, (result.final_status, result.sip_code, result.reason)


def _request(start: str, *headers: str, body: str = "") -> bytes:
    return ("\r\n".join([start, *headers]) + "\r\n\r\n" + body).encode()


VIA = "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1"
BASIC = (VIA, "From: <sip:a@h>;tag=1", "To: <sip:b@h>", "Call-ID: c1", "CSeq: 7 OPTIONS")


def test_requests_pjsip_parses_but_rfc_4475_refuses() -> None:
    assert badrequest.problem(_request("OPTIONS sip:b@h SIP/2.0", *BASIC, "Content-Length: 0")) is None
    mismatch = _request("OPTIONS sip:b@h SIP/2.0", *BASIC[:4], "CSeq: 8 INVITE", "l: 0")
    assert badrequest.problem(mismatch) == (400, "CSeq method does not match the request method")
    twice = _request("OPTIONS sip:b@h SIP/2.0", *BASIC, "Content-Length: 3", "l: 3", body="abc")
    assert badrequest.problem(twice) == (400, "more than one Content-Length")
    short = _request("OPTIONS sip:b@h SIP/2.0", *BASIC, "Content-Length: 99", body="abc")
    assert badrequest.problem(short) == (400, "Content-Length larger than the message")
    require = _request("OPTIONS sip:b@h SIP/2.0", *BASIC, "Require: nothing, Timer", "l: 0")
    assert badrequest.unsupported(require, {"timer", "replaces"}) == ["nothing"]
    ack = _request("ACK sip:b@h SIP/2.0", *BASIC[:4], "CSeq: 7 ACK", "Require: nothing")
    assert badrequest.unsupported(ack, set()) == []


def test_the_answer_to_what_pjsip_cannot_parse() -> None:
    def answer(start: str, *headers: str) -> tuple[str, int | None]:
        found = badrequest.answer_unparsable(_request(start, *headers))
        assert found is not None
        return found[0].decode().split("\r\n", 1)[0], found[1]

    assert answer("OPTIONS sip:b@h SIP/7.0", *BASIC) == ("SIP/2.0 505 Version Not Supported", 5999)
    assert answer("F!OO sip:b@h SIP/2.0", *BASIC) == ("SIP/2.0 501 Not Implemented", 5999)
    assert answer("OPTIONS soap.beep://h:1 SIP/2.0", *BASIC) == ("SIP/2.0 416 Unsupported URI Scheme", 5999)
    assert answer("INVITE <sip:b@h> SIP/2.0", *BASIC) == ("SIP/2.0 400 Bad Request", 5999)
    assert answer("INVITE sip:b@h SIP/2.0", "v: SIP/2.0/UDP h;rport;branch=z9hG4bK2") == (
        "SIP/2.0 400 Bad Request",
        None,  # rport: back to the source port
    )
    full = badrequest.answer_unparsable(_request("INVITE sip:b@h SIP/2.0", *BASIC, "Via: SIP/2.0/UDP h2"))
    assert full is not None
    lines = full[0].decode().split("\r\n")
    assert lines[1:3] == [VIA, "Via: SIP/2.0/UDP h2"]
    assert lines[3] == "From: <sip:a@h>;tag=1" and lines[4].startswith("To: <sip:b@h>;tag=")
    assert lines[5:] == ["Call-ID: c1", "CSeq: 7 OPTIONS", "Content-Length: 0", "", ""]
    assert badrequest.answer_unparsable(b"SIP/2.0 200 OK\r\n" + VIA.encode() + b"\r\n\r\n") is None
    assert badrequest.answer_unparsable(_request("ACK sip:b@h SIP/2.0", *BASIC)) is None
    assert badrequest.answer_unparsable(_request("INVITE sip:b@h SIP/2.0", "To: <sip:b@h>")) is None
    assert badrequest.answer_unparsable(b"\r\n\r\n") is None
