import pytest

from lab.analysis.quality import delay_impairment, e_model, mos_from_r
from lab.analysis.rtp import RtpStats


def stats(lost_pct: float, max_jitter: float = 1.0) -> RtpStats:
    return RtpStats(1000, 1000, int(lost_pct * 10), lost_pct, 0, 19, 20, 21, 0, 0.5, max_jitter, 0, 0, 20)


def test_clean_g711_is_the_narrowband_maximum() -> None:
    q = e_model(stats(0), "PCMU")
    assert q.r_factor == 93.2 and q.mos == pytest.approx(4.41, abs=0.01)


def test_loss_and_codec_lower_the_score() -> None:
    assert e_model(stats(5), "PCMU").mos < e_model(stats(1), "PCMU").mos < e_model(stats(0), "PCMU").mos
    assert e_model(stats(0), "GSM").r_factor == pytest.approx(73.2)
    assert e_model(stats(0), "PT96").impairment.source.startswith("assumed")


def test_delay_impairment_and_mos_mapping() -> None:
    assert delay_impairment(100) == 0 and delay_impairment(300) > delay_impairment(200) > 0
    assert mos_from_r(0) == 1.0 and mos_from_r(100) == 4.5 and mos_from_r(50) == pytest.approx(2.58, abs=0.01)


def test_bursty_loss_costs_more_than_random_loss_at_the_same_rate() -> None:
    # G.711 with PLC at 5 % loss: Ie,eff = 95 * 5 / (5 / BurstR + 25.1).
    random_loss, bursty = e_model(stats(5), "PCMU", 1.0), e_model(stats(5), "PCMU", 3.8)
    assert random_loss.ie_eff == pytest.approx(95 * 5 / (5 + 25.1), abs=0.1)
    assert bursty.ie_eff == pytest.approx(95 * 5 / (5 / 3.8 + 25.1), abs=0.1)
    assert bursty.mos < random_loss.mos


def test_every_sip_codec_has_its_own_ie_and_says_where_it_comes_from() -> None:
    from lab.analysis.quality import IMPAIRMENTS, impairment_of
    from lab.sip.codecs import LEG_CODECS

    for name in LEG_CODECS["sip"]:
        assert name in IMPAIRMENTS, name
        assert IMPAIRMENTS[name].source.startswith(("G.113 Appendix I", "assumed")), name
    assert impairment_of("speex", 16000) is IMPAIRMENTS["SPEEX16"]
    assert (
        impairment_of("speex", 8000) is IMPAIRMENTS["SPEEX8"] and impairment_of("iLBC") is IMPAIRMENTS["ILBC"]
    )
    assert "wideband" in IMPAIRMENTS["SPEEX32"].source and "wideband" in IMPAIRMENTS["G722"].source
