"""The Phone's buttons: which a state allows, without a lab or a kernel."""

from __future__ import annotations

import pytest

from lab.config import LabConfig
from lab.network.impairment import ImpairmentError, profile
from lab.widgets import PhoneForm, PhoneState


def usable(form: PhoneForm) -> set[str]:
    buttons = {
        "login": form.login_button,
        "voice": form.voice_button,
        "video": form.video_button,
        "hangup": form.hangup_button,
        "hold": form.hold_button,
        "transfer": form.transfer_button,
        "consult": form.consult_button,
        **{f"key {k}": b for k, b in form.keys.items()},
    }
    return {name for name, button in buttons.items() if not button.disabled}


def test_each_state_allows_only_what_makes_sense() -> None:
    form = PhoneForm(LabConfig().account())
    keys = {f"key {k}" for k in "123456789*0#"}
    assert usable(form) == {"login"}  # before login
    form.enable(PhoneState(logged_in=True))
    assert usable(form) == {"login", "voice", "video"}
    form.enable(PhoneState(logged_in=True, in_call=True))  # dialling or ringing
    assert usable(form) == {"hangup"}
    form.enable(PhoneState(logged_in=True, in_call=True, talking=True))
    assert usable(form) == {"hangup", "hold", "transfer", "consult"} | keys
    form.enable(PhoneState(logged_in=True, in_call=True, talking=True, on_hold=True, consulting=True))
    assert usable(form) == {"hangup", "hold", "transfer"} | keys and form.hold_button.description == "Unhold"


def test_the_form_gives_the_account_and_keeps_what_it_said() -> None:
    form = PhoneForm(LabConfig().account())
    form.auth_name.value = ""
    account = form.account("lab-password")
    assert (account.login, account.auth_name, account.password) == ("VKP009", "VKP009", "lab-password")
    form.say("FAILED 486 Busy Here", error=True)
    assert form.history == ["FAILED 486 Busy Here"] and "#c62828" in form.status.value


def test_the_network_choices_are_perfect_by_default_and_give_the_calls_impairments() -> None:
    form = PhoneForm(LabConfig().account())
    assert form.impairments() == ()  # every leg perfect: the media goes direct
    form.networks["mobile"].value = "3g"
    form.impair.value = "sip:to-phone:delay=80ms,seed=2; mobile:to-browser:loss=5%"
    asked = {(i.leg, i.direction): i.impairment.spec() for i in form.impairments()}
    assert asked == {
        ("sip", "to-phone"): "delay=80ms,seed=2",
        ("mobile", "to-phone"): profile("3g").spec(),
        ("mobile", "to-browser"): "loss=5%,seed=0",  # the impair field overrides the profile
    }


def test_a_bad_impair_field_names_the_parameter_and_the_choices_wait_while_in_call() -> None:
    form = PhoneForm(LabConfig().account())
    form.impair.value = "mobile:both:loss=150%"
    with pytest.raises(ImpairmentError, match="loss=150%: must be from 0% up to"):
        form.impairments()
    form.enable(PhoneState(logged_in=True, in_call=True))
    assert form.impair.disabled and all(d.disabled for d in form.networks.values())
    form.enable(PhoneState(logged_in=True))
    assert not form.impair.disabled and not any(d.disabled for d in form.networks.values())


def test_each_legs_codec_is_a_choice_the_leg_can_carry_and_default_is_the_labs() -> None:
    form = PhoneForm(LabConfig().account())
    assert (
        form.codecs["browser"].value == "opus" and form.leg_codec("sip") is form.leg_codec("mobile") is None
    )
    assert "SPEEX32" in form.codecs["sip"].options and "SPEEX32" not in form.codecs["mobile"].options
    assert "OPUS" not in form.codecs["sip"].options  # not in the pjsua2 wheel
    form.codecs["sip"].value, form.codecs["mobile"].value = "SPEEX16", "ILBC"
    assert (form.leg_codec("sip"), form.leg_codec("mobile")) == ("SPEEX16", "ILBC")
    form.enable(PhoneState(logged_in=True, in_call=True))
    assert all(d.disabled for d in form.codecs.values())
