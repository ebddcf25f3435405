"""The SIP parties' jitter buffer is the lab's (pjsua2 sets it per process): a deeper one
delays what every SIP hop plays by as much."""

from __future__ import annotations

import dataclasses

import pytest

from lab.config import LabConfig, PhonePolicy
from lab.scenario import place_call
from lab.stack import LabError, Stack

pytestmark = pytest.mark.slow


async def test_a_fixed_200_ms_buffer_delays_the_phones_voice_by_its_two_sip_hops(
    lab_config: LabConfig,
) -> None:
    delays = {}
    for spec in ("adaptive:20-80", "fixed:200"):
        # A bridged lab (`up --transcode`): the default call, relayed, would cross no SIP jitter
        # buffer at the gateway, only the PSTN gateway's (33 -> 124 ms measured).
        bridged = dataclasses.replace(lab_config, sip_jitter_buffer=spec, passthrough=False)
        async with Stack(bridged) as stack:
            result = await place_call(
                stack.cfg, "+79991234567", duration=3.0, answer=PhonePolicy("answer", 0)
            )
        assert result.ok and result.model is not None, result
        (heard,) = [p for p in result.model.pesq if p.direction == "Mobile phone -> Browser"]
        assert heard.mouth_to_ear_ms is not None
        delays[spec] = heard.mouth_to_ear_ms
    print(f"mouth to ear, phone -> browser: {delays}")
    # Measured: 105 ms and 324 ms. pjmedia's progressive discard trims what its buffers hold
    # beyond the jitter it sees, so the two SIP hops add about one buffer's worth, not two.
    assert delays["fixed:200"] - delays["adaptive:20-80"] > 150, delays


async def test_a_bad_buffer_is_refused_before_anything_starts(lab_config: LabConfig) -> None:
    with pytest.raises(
        LabError, match="sip_jitter_buffer: jitter buffer 'elastic': write fixed:MS or adaptive"
    ):
        await Stack(dataclasses.replace(lab_config, sip_jitter_buffer="elastic")).start()
