"""--impair and --network as the command line takes them, and the header that carries them."""

from __future__ import annotations

import pytest

from lab.network.impairment import Impairment, ImpairmentError, profile
from lab.network.legs import from_header, on_leg, parse_impair, plan, to_header


def test_both_directions_get_the_same_network_with_their_own_random_streams() -> None:
    items = parse_impair("mobile:both:loss=5%,burst=3,seed=7")
    assert [(i.leg, i.direction) for i in items] == [("mobile", "to-phone"), ("mobile", "to-browser")]
    assert items[0].impairment == Impairment(loss=0.05, burst=3, seed=7)
    assert items[1].impairment == Impairment(loss=0.05, burst=3, seed=1007)


def test_later_options_override_earlier_ones_and_perfect_legs_are_left_out() -> None:
    items = plan(
        impair=["sip:to-phone:delay=80ms", "mobile:to-browser:loss=0%"],
        network=["3g@mobile", "satellite@sip"],
    )
    assert {(i.leg, i.direction): i.impairment.spec() for i in items} == {
        ("sip", "to-phone"): "delay=80ms,seed=0",  # --impair after --network
        ("sip", "to-browser"): profile("satellite").reseeded(1000).spec(),
        ("mobile", "to-phone"): profile("3g").spec(),
    }  # mobile to-browser asked perfect: its media goes direct
    assert on_leg(items, "browser") == {}


def test_the_header_carries_exactly_what_was_asked() -> None:
    items = plan(impair=["browser:both:loss=2%,jitter=30ms,reorder=off,dup=1%,rate=64kbit,seed=3"])
    assert from_header(to_header(items)) == items


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("air:both:loss=5%", "leg 'air': one of browser, sip, mobile"),
        ("sip:up:loss=5%", "direction 'up': one of to-phone, to-browser, both"),
        ("sip:both", "expected LEG:DIRECTION:SPEC"),
        ("sip:both:loss=100%", "loss=100%: must be from 0% up to"),
        ("sip:both:delay=-5ms", "delay and jitter must be 0 ms or more"),
        ("sip:both:colour=red", "expected NAME=VALUE with NAME one of loss, burst"),
    ],
)
def test_bad_options_name_the_parameter_and_the_accepted_values(option: str, message: str) -> None:
    with pytest.raises(ImpairmentError, match=message):
        plan(impair=[option])


def test_an_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ImpairmentError, match="'4g': one of perfect, wifi-busy, 3g, satellite"):
        plan(network=["4g@mobile"])
