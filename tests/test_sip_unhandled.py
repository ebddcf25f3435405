"""Every pjsua2 party answers the requests pjsua has no module for (RFC 3261 section 8.2.1), as
a foreign client sends them over UDP, and goes on carrying calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.config import Party
from lab.scenario import place_call
from lab.sip.endpoint import unhandled_answer
from lab.sip.message import parse_sip
from lab.sip.options import exchange, request
from lab.stack import Stack

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
    raw = await exchange(party.host, party.sip_port, asking(party, method))
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
            await exchange(party.host, party.sip_port, asking(party, "ACK"), timeout=0.3)
        options = parse_sip(await exchange(party.host, party.sip_port))
        assert options is not None and options.headers.get("allow") == PJSUA_ALLOW, party.name
    assert not wrong, "\n".join(wrong)
    assert all(p.proc is not None and p.proc.poll() is None for p in stack.parties)
    result = await place_call(stack.cfg, "+79161234567", duration=1.0, capture=False, report=False)
    assert result.ok, (result.final_status, result.sip_code, result.reason)
