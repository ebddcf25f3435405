"""Impaired calls through the real lab: what each network party says it did is what the
capture shows the receiver got, packet for packet."""

from __future__ import annotations

import math
import statistics

import pytest

from lab.analysis.hops import NetworkHop
from lab.analysis.ladder import ladder_rows
from lab.analysis.model import CallModel
from lab.config import PhonePolicy
from lab.network.legs import plan
from lab.scenario import CallResult, place_call
from lab.stack import Stack
from lab.webrtc import BrowserAudio

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
#: The party on the phone's side of each leg: a to-phone hop ends there.
PHONE_SIDE = {"browser": "Gateway", "sip": "PSTN gateway", "mobile": "Mobile phone"}


def hop(model: CallModel, row: dict[str, object]) -> NetworkHop:
    leg, direction = str(row["leg"]), str(row["direction"])
    found = [
        h
        for h in model.hops
        if h.network == row["network"] and (h.dst_party == PHONE_SIDE[leg]) == (direction == "to-phone")
    ]
    assert len(found) == 1, (row, [h.label for h in model.hops])
    return found[0]


@pytest.fixture(scope="module")
async def impaired(stack: Stack) -> CallResult:
    impairments = plan(
        impair=[
            "browser:to-phone:loss=4%,seed=8",
            "mobile:to-phone:loss=10%,burst=3,seed=3",
            "mobile:to-browser:loss=5%,seed=4",
            "sip:to-phone:delay=40ms,jitter=10ms,seed=5",
            "sip:to-browser:loss=8%,dup=5%,seed=6",
        ]
    )
    result = await place_call(
        stack.cfg, NUMBER, duration=5.0, answer=PhonePolicy("answer", 0.3), impairments=impairments
    )
    assert result.ok and result.model is not None, result
    return result


async def test_the_capture_shows_exactly_the_packets_each_network_dropped_and_duplicated(
    impaired: CallResult,
) -> None:
    assert impaired.model is not None
    rows = {(r["leg"], r["direction"]): r for r in impaired.impairments}
    # Both directions of every impaired leg: the one not asked for is a perfect network.
    assert set(rows) == {(leg, d) for leg in PHONE_SIDE for d in ("to-phone", "to-browser")}
    assert rows["browser", "to-browser"]["spec"] == "" and rows["browser", "to-browser"]["dropped"] == 0
    for row in rows.values():
        measured = hop(impaired.model, row)
        dropped = row["dropped_seqs"]
        assert isinstance(dropped, list)
        assert sorted(measured.lost_seqs.tolist()) == sorted(dropped), row["spec"]
        assert measured.duplicated == len(row["duplicated_seqs"]), row["spec"]  # type: ignore[arg-type]
    assert len(rows["mobile", "to-phone"]["dropped_seqs"]) > 10  # type: ignore[arg-type]
    assert len(rows["sip", "to-browser"]["duplicated_seqs"]) > 3  # type: ignore[arg-type]
    # The receiver's own statistics count the same losses (those between its first and last packet).
    phone_leg = hop(impaired.model, rows["mobile", "to-phone"])
    at_phone = next(
        s for s in impaired.model.streams if (s.src_party, s.dst_party) == ("Mobile network", "Mobile phone")
    )
    inside = [
        s for s in phone_leg.lost_seqs.tolist() if at_phone.series.seq.min() < s < at_phone.series.seq.max()
    ]
    assert at_phone.stats.lost == len(inside)


async def test_injected_delay_and_jitter_are_measured_within_a_millisecond(impaired: CallResult) -> None:
    assert impaired.model is not None
    rows = {(r["leg"], r["direction"]): r for r in impaired.impairments}
    delayed = hop(impaired.model, rows["sip", "to-phone"])
    # The relay's own forwarding time, measured on the same network in the same call.
    base = hop(impaired.model, rows["sip", "to-browser"]).delay_ms
    print(f"delay {delayed.delay_ms:.3f} ms over a base of {base:.3f} ms, sd {delayed.delay_sd_ms:.3f} ms")
    assert abs(delayed.delay_ms - base - 40) < 1.0, (delayed.delay_ms, base)
    assert abs(delayed.delay_sd_ms - 10 / math.sqrt(3)) < 1.0, delayed.delay_sd_ms  # U(-10, 10) ms
    # Each packet within delay +/- jitter; a busy machine may hold one back a few ms more.
    assert delayed.delay_min_ms > 29 and delayed.delay_max_ms < 56


async def test_the_call_still_carries_speech_and_its_json_says_what_was_asked(impaired: CallResult) -> None:
    assert impaired.model is not None
    specs = {(r["leg"], r["direction"]): r["spec"] for r in impaired.impairments}
    assert specs["sip", "to-phone"] == "delay=40ms,jitter=10ms,seed=5"
    assert specs["mobile", "to-phone"] == "loss=10%,burst=3,seed=3"
    assert {p.direction for p in impaired.model.pesq} == {
        "Browser -> Mobile phone",
        "Mobile phone -> Browser",
    }
    assert all(1.0 < p.mos_lqo < 4.5 for p in impaired.model.pesq)
    parties = {s.src_party for s in impaired.model.streams} | {s.dst_party for s in impaired.model.streams}
    assert {"Internet", "Core network", "Mobile network"} <= parties


async def test_the_browser_legs_setup_goes_via_the_internet_party(impaired: CallResult) -> None:
    """ICE checks and the DTLS handshake cross the browser leg's network party like its SRTP:
    each arrow ends at the Internet lifeline, and each flight shows on both hops."""
    assert impaired.model is not None
    rows = [r for r in ladder_rows(impaired.model) if r.label.startswith(("STUN", "DTLS"))]
    assert rows and all("Internet" in (r.src, r.dst) for r in rows), [(r.src, r.dst, r.label) for r in rows]
    hello = [(r.src, r.dst) for r in rows if r.label == "DTLS ClientHello" and r.style == "webrtc"]
    finished = {(r.src, r.dst) for r in rows if r.label.endswith("Finished (encrypted)")}
    assert hello == [("Gateway", "Internet"), ("Internet", "Browser")], hello
    assert finished == {
        ("Gateway", "Internet"),
        ("Internet", "Browser"),
        ("Browser", "Internet"),
        ("Internet", "Gateway"),
    }
    checks = {(r.src, r.dst) for r in rows if r.label.startswith("STUN Binding Request")}
    assert {("Browser", "Internet"), ("Internet", "Gateway")} <= checks, checks


async def test_opus_fec_holds_better_than_plc_alone_at_5_percent_loss_on_the_browser_leg(
    stack: Stack,
) -> None:
    """The same seeded 5 % loss on the browser leg, Opus at 24 kbit/s with and without in-band
    FEC, median of three seeds; G.711 on the SIP and mobile legs, so GSM does not cap what
    the phone hears."""
    scores: dict[bool, list[float]] = {True: [], False: []}
    for seed in (11, 12, 13):
        for fec in (True, False):
            result = await place_call(
                stack.cfg,
                NUMBER,
                duration=6.0,
                answer=PhonePolicy("answer", 0.3),
                audio=BrowserAudio("opus", opus_bitrate=24000, opus_fec=fec),
                sip_codec="PCMU",
                mobile_codec="PCMU",
                impairments=plan(impair=[f"browser:to-phone:loss=5%,seed={seed}"]),
            )
            assert result.ok and result.model is not None, result
            (to_phone,) = [p for p in result.model.pesq if p.direction == "Browser -> Mobile phone"]
            scores[fec].append(to_phone.mos_lqo)
    print(f"PESQ browser -> phone at 5 % loss: FEC {scores[True]}, PLC only {scores[False]}")
    assert statistics.median(scores[True]) > statistics.median(scores[False]) + 0.1, scores
