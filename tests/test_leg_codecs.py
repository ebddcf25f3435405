"""Every codec the pjsua2 wheel has on the SIP leg, every mobile codec on the mobile leg,
through the real lab: the call is established, the phone hears the browser's prompt, and
the capture shows the codec asked for on each leg."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.audio import heard_match, read_wav
from lab.config import PhonePolicy
from lab.network.legs import plan
from lab.scenario import place_call
from lab.sip.codecs import LEG_CODECS
from lab.stack import Stack

pytestmark = pytest.mark.slow

#: Each SIP codec once, each mobile codec at least once: 8 calls. 4 s each, as the default
#: call's test: the first second at the phone can be garbled while the media starts.
PAIRS = [
    ("pcmu", "pcma"),
    ("pcma", "ilbc"),
    ("g722", "speex8"),
    ("speex8", "pcmu"),
    ("speex16", "gsm"),
    ("speex32", "speex16"),
    ("ilbc", "g722"),
    ("gsm", "speex8"),
]


def test_the_pairs_cover_every_codec_of_both_legs() -> None:
    assert {s.upper() for s, _ in PAIRS} == set(LEG_CODECS["sip"])
    assert {m.upper() for _, m in PAIRS} == set(LEG_CODECS["mobile"])


@pytest.mark.parametrize(("sip", "mobile"), PAIRS)
async def test_each_leg_carries_the_codec_asked_for(stack: Stack, sip: str, mobile: str) -> None:
    result = await place_call(
        stack.cfg,
        "+79991234567",
        duration=4.0,
        answer=PhonePolicy("answer", 0),
        sip_codec=sip,
        mobile_codec=mobile,
    )
    assert result.ok, result
    assert result.codecs == {"browser": "opus", "sip": sip.upper(), "mobile": mobile.upper()}
    assert result.model is not None
    # Both directions of both SIP legs, not only the one negotiated() looked at.
    legs = {("Gateway", "PSTN gateway"): sip.upper(), ("PSTN gateway", "Mobile phone"): mobile.upper()}
    for (a, b), codec in legs.items():
        streams = [s for s in result.model.streams if {s.src_party, s.dst_party} == {a, b}]
        assert len(streams) == 2, (a, b, [s.label for s in result.model.streams])
        assert {s.codec.upper().replace("SPEEX", f"SPEEX{s.clock_rate // 1000}") for s in streams} == {codec}
    browser_prompt, _ = read_wav(stack.cfg.prompts_dir / "browser.wav")
    assert result.audio["phone_received"]
    at_phone, _ = read_wav(Path(result.audio["phone_received"]))
    assert heard_match(browser_prompt, at_phone) > 0.85


async def test_the_codec_choice_and_a_network_detour_go_together(stack: Stack) -> None:
    """Both edits of the offerers' SDP at once: the media crosses the Core and Mobile
    networks, and carries the codecs asked for there."""
    result = await place_call(
        stack.cfg,
        "+79991234567",
        duration=4.0,
        answer=PhonePolicy("answer", 0),
        sip_codec="speex16",
        mobile_codec="ilbc",
        impairments=plan(["sip:both:delay=5ms,seed=1", "mobile:both:delay=5ms,seed=1"]),
    )
    assert result.ok, result
    assert result.codecs == {"browser": "opus", "sip": "SPEEX16", "mobile": "ILBC"}
    assert result.model is not None
    pairs = {(s.src_party, s.dst_party) for s in result.model.streams}
    assert {("Gateway", "Core network"), ("Core network", "PSTN gateway")} <= pairs, pairs
    assert {("PSTN gateway", "Mobile network"), ("Mobile network", "Mobile phone")} <= pairs, pairs
    browser_prompt, _ = read_wav(stack.cfg.prompts_dir / "browser.wav")
    assert result.audio["phone_received"]
    at_phone, _ = read_wav(Path(result.audio["phone_received"]))
    assert heard_match(browser_prompt, at_phone) > 0.85
