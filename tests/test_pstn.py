"""The PSTN channel's B2BUA state machine, driven with stand-in calls: no pjsua2 process."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, cast

from lab.config import LabConfig
from lab.sip.endpoint import CallSnapshot, SipCall, SipEndpoint
from lab.sip.pstn import PstnGateway

CFG = dataclasses.replace(LabConfig(), no_answer_timeout=0.2, media_timeout=0.6)


class FakeCall:
    """What the channel does to a call, recorded: ("dial", uri), ("answer", code), ..."""

    def __init__(self, name: str, source: str = "") -> None:
        self.name = name
        self.source = source  # where an incoming call's INVITE came from
        self.listener: Any = None
        self.alive = True
        self.did: list[tuple[Any, ...]] = []
        self.rx = 0

    def __repr__(self) -> str:
        return self.name

    def dial(self, uri: str, headers: dict[str, str] | None = None) -> None:
        self.did.append(("dial", uri, headers))

    def answer_with(self, code: int, reason: str = "") -> None:
        self.did.append(("answer", code))

    def hangup_with(self, code: int = 0, reason: str = "", cause: str = "", cause_code: int = 200) -> None:
        self.did.append(("hangup", code, cause, cause_code) if cause else ("hangup", code, cause))

    def hold(self) -> None:
        self.did.append(("hold",))

    def unhold(self) -> None:
        self.did.append(("unhold",))

    def send_dtmf(self, digits: str, method: str = "rfc4733") -> None:
        self.did.append(("dtmf", digits, method))

    def audio(self) -> None:
        return None

    def rx_packets(self) -> int:
        self.rx += 1  # RTP keeps coming unless a test stops it
        return self.rx


class Channel(PstnGateway):
    def __init__(self) -> None:
        super().__init__(CFG, cast(SipEndpoint, None), CFG.pstn)
        self.placed: list[FakeCall] = []

    def _new_call(self) -> SipCall:
        call = FakeCall(f"leg{len(self.placed) + 1}")
        self.placed.append(call)
        return cast(SipCall, call)

    def state(self, call: FakeCall, state: str, code: int = 0, reason: str = "") -> None:
        self.on_call_state(cast(SipCall, call), CallSnapshot(state, code, reason, ""))


def incoming(
    channel: Channel, user: str = "+79161234567", source: str = "127.0.0.3:5060", **extra: str
) -> tuple[FakeCall, FakeCall]:
    """A call from the SIP server to a phone number: returns legs A and B."""
    a = FakeCall("A", source)
    assert channel.admit_call()
    headers = {
        "from": '"Browser" <sip:VKP009@127.0.0.3>;tag=1',
        "x-calllab-call": "c1",
        "via": "SIP/2.0/UDP 127.0.0.3:5060",
        **extra,
    }
    channel.on_incoming_call(cast(SipCall, a), user, headers)
    return a, channel.placed[-1] if channel.placed else a


async def test_only_the_trusted_sip_server_may_call_and_hops_are_counted() -> None:
    channel = Channel()
    stranger, _ = incoming(channel, source="127.0.0.1:5099")  # skipping the SIP server's auth
    assert stranger.did == [("answer", 403)] and channel.placed == []
    assert channel.admit_call()  # the refused call left the channel free
    looping, _ = incoming(Channel(), **{"max-forwards": "0"})
    assert looping.did == [("answer", 483)]
    trusted = Channel()
    trusted.cfg = dataclasses.replace(CFG, pstn_trusted_hosts=("127.0.0.1",))
    _, b = incoming(trusted, source="127.0.0.1:5099")
    assert b.did[0][0] == "dial"


async def test_a_call_to_the_phone_rings_answers_and_ends_end_to_end() -> None:
    channel = Channel()
    a, b = incoming(channel)
    uri, headers = b.did[0][1], b.did[0][2]
    assert uri == f"sip:+79161234567@{CFG.phone_for('+79161234567').sip_address}"
    assert headers == {"X-Calllab-Call": "c1", "P-Asserted-Identity": f"<sip:VKP009@{CFG.pstn.host}>"}
    assert not channel.admit_call()  # one call per channel

    channel.state(b, "EARLY", 180, "Ringing")
    channel.state(b, "CONFIRMED", 200, "OK")
    assert a.did == [("answer", 180), ("answer", 200)]
    await asyncio.sleep(CFG.no_answer_timeout + 0.1)  # answered: the no-answer timer is off
    assert a.did == [("answer", 180), ("answer", 200)]

    channel.state(b, "DISCONNECTED", 200, "Normal call clearing")  # the phone hangs up
    assert a.did[-1] == ("hangup", 0, "")
    channel.state(a, "DISCONNECTED", 200, "")
    assert channel.legs == {}
    assert channel.admit_call()  # free again


async def test_phone_answers_pass_through_or_become_503() -> None:
    for code, expected in ((486, ("hangup", 486, "")), (500, ("hangup", 503, ""))):
        channel = Channel()
        a, b = incoming(channel)
        channel.state(b, "DISCONNECTED", code, "nope")
        assert a.did[-1] == expected
        assert channel.legs == {a: channel.legs[cast(SipCall, a)]}  # A stays until its DISCONNECTED
        assert channel.legs[cast(SipCall, a)].peer is None


async def test_nobody_answers_480_and_cancel() -> None:
    channel = Channel()
    a, b = incoming(channel)
    channel.state(b, "EARLY", 180, "Ringing")
    await asyncio.sleep(CFG.no_answer_timeout + 0.1)
    assert a.did[-1] == ("hangup", 480, "")
    assert b.did[-1] == ("hangup", 0, "")


async def test_hold_is_mirrored_and_dtmf_forwarded() -> None:
    channel = Channel()
    a, b = incoming(channel)
    channel.state(b, "CONFIRMED", 200, "OK")
    channel.on_media_state(cast(SipCall, a), "remote_hold")
    channel.on_media_state(cast(SipCall, a), "remote_hold")  # a second re-INVITE: held once
    channel.on_media_state(cast(SipCall, a), "active")
    channel.on_dtmf(cast(SipCall, a), "5", "info")
    assert b.did[1:] == [("hold",), ("unhold",), ("dtmf", "5", "info")]


async def test_failed_blind_transfer_gives_the_phone_back_to_the_caller() -> None:
    channel = Channel()
    a, b = incoming(channel)
    channel.state(b, "CONFIRMED", 200, "OK")
    c = FakeCall("C")
    channel.on_transferring(cast(SipCall, a), cast(SipCall, c))
    channel.on_dtmf(cast(SipCall, b), "1", "rfc4733")
    assert c.did == [("dtmf", "1", "rfc4733")]  # the phone now talks to the transfer call
    channel.state(c, "DISCONNECTED", 404, "Not Found")
    channel.on_dtmf(cast(SipCall, b), "2", "rfc4733")
    assert a.did[-1] == ("dtmf", "2", "rfc4733")
    assert c.did == [("dtmf", "1", "rfc4733")]


async def test_silent_far_end_ends_both_legs_naming_it() -> None:
    channel = Channel()
    a, b = incoming(channel)
    channel.state(b, "CONFIRMED", 200, "OK")
    b.rx_packets = lambda: 7  # type: ignore[method-assign]  # the phone's RTP stops
    channel.on_media_active(cast(SipCall, b))
    await asyncio.sleep(CFG.media_timeout + 0.8)
    assert b.did[-1] == ("hangup", 0, "")
    phone = CFG.phone_for("+79161234567").name
    silent = f"PSTN gateway: no RTP from {phone} for {CFG.media_timeout:g} s"
    assert a.did[-1] == ("hangup", 0, silent, 408)  # Reason: SIP;cause=408
