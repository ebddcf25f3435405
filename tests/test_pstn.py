"""The PSTN channel's B2BUA state machine, driven with stand-in calls: no pjsua2 process."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any, cast

from lab.config import LabConfig
from lab.sip.endpoint import CallSnapshot, SipCall, SipEndpoint
from lab.sip.pstn import PstnGateway
from lab.sip.sdp import keep_codecs, parse_sdp

CFG = dataclasses.replace(LabConfig(), no_answer_timeout=0.2, media_timeout=0.6)


class FakeCall:
    """What the channel does to a call, recorded: ("dial", uri), ("answer", code), ..."""

    def __init__(self, name: str, source: str = "", offer: str = "") -> None:
        self.name = name
        self.source = source  # where an incoming call's INVITE came from
        self.offer = offer  # ... and its SDP
        self.sdp_edit: Any = None
        self.reason = ""  # of its last answer
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
        self.reason = reason

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
    channel: Channel,
    user: str = "+79161234567",
    source: str = "127.0.0.3:5060",
    offer: str = "",
    **extra: str,
) -> tuple[FakeCall, FakeCall]:
    """A call from the SIP server to a phone number: returns legs A and B."""
    a = FakeCall("A", source, offer)
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


#: What pjsua2 offers with every codec of the wheel enabled.
EVERY_CODEC = (Path(__file__).parent / "fixtures" / "pjsua_offer_every_codec.sdp").read_bytes().decode()


FROM_THE_SIP_SERVER = {"via": "SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK1"}


def offered(edit: Any) -> list[str]:
    return [str(c) for c in parse_sdp(edit(EVERY_CODEC, ""))[0].codecs]


async def test_each_leg_offers_the_calls_codec_or_what_it_offered_before() -> None:
    _, b = incoming(Channel(), **{"x-calllab-codecs": "sip=G722;mobile=ILBC"})
    assert offered(b.sdp_edit) == ["iLBC/8000", "telephone-event/8000"]
    a, b = incoming(Channel())
    # Without a choice, what it offered before: GSM, PCMU, PCMA (in the SDP's order; the real
    # offer has GSM first, from the channel's codec priorities).
    assert offered(b.sdp_edit) == ["PCMU/8000", "PCMA/8000", "GSM/8000", "telephone-event/8000"]
    # Leg A (its answer's edit is made on pjsua's thread) takes every codec from the SIP side.
    takes = Channel().answer_edit(FROM_THE_SIP_SERVER, EVERY_CODEC)
    assert len(offered(takes)) == len(parse_sdp(EVERY_CODEC)[0].codecs)


async def test_an_offer_without_a_codec_it_takes_gets_488_naming_both_lists() -> None:
    channel = Channel()
    channel.cfg = dataclasses.replace(CFG, pstn_codecs=("GSM", "PCMU", "PCMA"))
    g722 = keep_codecs(EVERY_CODEC, ["G722/8000"])
    a, _ = incoming(channel, offer=g722)
    assert a.did == [("answer", 488)] and channel.placed == []
    assert a.reason == "offered G722; the PSTN gateway accepts GSM, PCMU, PCMA"
    g729 = "v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio 4000 RTP/AVP 18 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    a, _ = incoming(Channel(), offer=g729)
    assert a.did == [("answer", 488)] and a.reason.startswith(
        "offered G729; the PSTN gateway accepts PCMU, PCMA, G722"
    )
    a, _ = incoming(Channel(), **{"x-calllab-codecs": "mobile=SPEEX32"})
    assert a.did == [("answer", 488)] and "not possible on the mobile leg" in a.reason
    g722_gsm = keep_codecs(EVERY_CODEC, ["G722/8000", "GSM/8000"])
    _, b = incoming(channel, offer=g722_gsm)
    assert b.did[0][0] == "dial"  # taken: its answer offers only what this gateway takes
    assert offered(channel.answer_edit(FROM_THE_SIP_SERVER, g722_gsm)) == [
        "PCMU/8000",
        "PCMA/8000",
        "GSM/8000",
        "telephone-event/8000",
    ]
    assert channel.answer_edit(FROM_THE_SIP_SERVER, g722) is None  # refused: left to pjsua as it is
