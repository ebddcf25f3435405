"""Each SIP leg's codec: the SDP filter on real pjsua SDP, edits composed, the names the
command line takes and the ones it refuses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lab.cli import main
from lab.config import LabConfig
from lab.sip import codecs
from lab.sip.sdp import compose, keep_codecs, parse_sdp

#: What pjsua2 offers with every codec of the wheel enabled (CRLF line ends, as sent).
OFFER = (Path(__file__).parent / "fixtures" / "pjsua_offer_every_codec.sdp").read_bytes().decode()


def audio_codecs(sdp: str) -> list[str]:
    (audio,) = parse_sdp(sdp)
    return [str(c) for c in audio.codecs]


def test_the_fixture_is_pjsua_offering_every_codec() -> None:
    assert audio_codecs(OFFER) == [
        "PCMU/8000",
        "PCMA/8000",
        "G722/8000",
        "speex/8000",
        "speex/16000",
        "speex/32000",
        "iLBC/8000",
        "GSM/8000",
        "telephone-event/8000",
        "telephone-event/16000",
        "telephone-event/32000",
    ]


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("PCMU", ["PCMU/8000", "telephone-event/8000"]),
        ("G722", ["G722/8000", "telephone-event/8000"]),
        ("SPEEX16", ["speex/16000", "telephone-event/16000"]),
        ("SPEEX32", ["speex/32000", "telephone-event/32000"]),
        ("ILBC", ["iLBC/8000", "telephone-event/8000"]),
        ("GSM", ["GSM/8000", "telephone-event/8000"]),
    ],
)
def test_keep_codecs_leaves_one_codec_and_its_telephone_event(name: str, kept: list[str]) -> None:
    edited = keep_codecs(OFFER, [codecs.RTPMAP[name]])
    assert audio_codecs(edited) == kept
    pts = edited.split("m=audio ", 1)[1].split("\r\n", 1)[0].split()[2:]
    # No rtpmap or fmtp of a payload type that is gone; everything else as it was.
    for line in edited.split("\r\n"):
        if line.startswith(("a=rtpmap:", "a=fmtp:")):
            assert line[7:].split(":", 1)[-1].split()[0] in pts, line
    rest = [line for line in OFFER.split("\r\n") if not line.startswith(("m=", "a=rtpmap:", "a=fmtp:"))]
    assert [
        line for line in edited.split("\r\n") if not line.startswith(("m=", "a=rtpmap:", "a=fmtp:"))
    ] == rest
    assert edited.endswith("\r\n") and "\n\n" not in edited


def test_keep_codecs_keeps_the_offers_order_and_static_payload_types_without_rtpmap() -> None:
    bare = "v=0\nc=IN IP4 127.0.0.2\nm=audio 20000 RTP/AVP 8 0 3 101\na=rtpmap:101 telephone-event/8000\n"
    assert audio_codecs(keep_codecs(bare, ["pcmu/8000", "PCMA/8000"])) == [
        "PCMA/8000",
        "PCMU/8000",
        "telephone-event/8000",
    ]


def test_keep_codecs_refuses_to_leave_an_audio_stream_without_a_codec() -> None:
    with pytest.raises(ValueError, match="none of g729/8000"):
        keep_codecs(OFFER, ["G729/8000"])


def test_keep_codecs_leaves_other_media_alone() -> None:
    sdp = OFFER + "m=video 4004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    assert "m=video 4004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" in keep_codecs(sdp, ["GSM/8000"])


def test_compose_runs_each_edit_in_turn_and_skips_none() -> None:
    def upper(local: str, remote: str) -> str:
        return local.upper()

    def tag(local: str, remote: str) -> str:
        return local + remote

    assert compose() is None and compose(None, None) is None
    assert compose(None, upper) is upper
    both = compose(upper, None, tag)
    assert both is not None and both("a", "b") == "Ab"


def test_offer_edit_and_default_offers() -> None:
    cfg = LabConfig()
    assert codecs.default_offer(cfg, "sip") == ("PCMU", "PCMA")
    assert codecs.default_offer(cfg, "mobile") == ("GSM", "PCMU", "PCMA")
    edited = codecs.offer(codecs.default_offer(cfg, "mobile"))(OFFER, "")
    assert audio_codecs(edited) == ["PCMU/8000", "PCMA/8000", "GSM/8000", "telephone-event/8000"]
    assert codecs.enabled(["gsm", "PCMU"], codecs.LEG_CODECS["mobile"]) == [
        "GSM",
        "PCMU",
        "ILBC",
        "SPEEX8",
        "PCMA",
        "G722",
        "SPEEX16",
    ]
    wideband = dataclasses.replace(cfg, audio_rate=16000)
    assert codecs.default_offer(wideband, "sip") == ("G722", "PCMU", "PCMA")
    assert codecs.default_offer(wideband, "mobile") == ("G722", "GSM", "PCMU", "PCMA")


def test_names_header_and_the_codecs_a_leg_refuses() -> None:
    assert codecs.choose("sip", "g722") == "G722" and codecs.choose("sip", "Speex-16") == "SPEEX16"
    assert codecs.choose("mobile", "gsm") == "GSM"
    assert codecs.from_header(codecs.to_header({"sip": "G722", "mobile": "GSM"})) == {
        "sip": "G722",
        "mobile": "GSM",
    }
    assert codecs.from_header("") == {}
    with pytest.raises(codecs.CodecError, match="not possible on the mobile leg"):
        codecs.from_header("sip=PCMU;mobile=SPEEX32")
    with pytest.raises(codecs.CodecError, match="codec leg 'browser'"):
        codecs.from_header("browser=opus")
    assert codecs.lab_name("speex", 16000) == "SPEEX16" and codecs.lab_name("opus", 48000) is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sip-codec", "opus"], ["--sip-codec opus", "not on SIP legs", "libopus", "pcmu, pcma, g722"]),
        (["--sip-codec", "g729"], ["--sip-codec g729", "no G.729", "speex32, ilbc, gsm"]),
        (
            ["--mobile-codec", "speex32"],
            ["--mobile-codec speex32", "on the mobile leg", "gsm, ilbc, speex8, pcmu, pcma, g722, speex16"],
        ),
        (["--mobile-codec", "amr"], ["--mobile-codec amr: not possible;", "gsm, ilbc"]),
    ],
)
def test_the_cli_refuses_a_codec_a_leg_cannot_carry_before_starting_anything(
    args: list[str], words: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lab(*_: object) -> None:
        raise AssertionError("the lab was contacted")

    monkeypatch.setattr("lab.stack.running_config", no_lab)
    assert main(["call", "+79991234567", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("calllab: ") and "\n" not in err
    for word in words:
        assert word in err
