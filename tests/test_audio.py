from pathlib import Path

import numpy as np
import pytest

from lab.analysis.ceiling import through_chain
from lab.audio import (
    RATE,
    WIDEBAND_RATE,
    best_match,
    heard_match,
    pesq_nb,
    pesq_wb,
    read_wav,
    resample,
    write_wav,
)


def test_matches_its_own_prompt_not_the_other(lab_home: Path) -> None:
    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    phone, _ = read_wav(lab_home / ".calllab/prompts/phone.wav")
    shifted = np.concatenate([browser[12345:], browser[:12345]])
    own = best_match(browser, shifted)
    assert own.correlation > 0.95
    assert abs(own.lag_s - 12345 / RATE) < 0.02
    assert best_match(phone, shifted).correlation < 0.75


def test_pesq_of_a_clean_copy_is_near_the_top(lab_home: Path) -> None:
    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    assert pesq_nb(browser, np.roll(browser, 4000)) > 4.3
    noisy = np.roll(browser, 4000) + np.random.default_rng(1).normal(0, 0.05, len(browser)).astype(np.float32)
    assert pesq_nb(browser, noisy) < 3.0


def test_wav_round_trip(tmp_path: Path) -> None:
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE).astype(np.float32)
    write_wav(tmp_path / "t.wav", tone)
    back, rate = read_wav(tmp_path / "t.wav")
    assert rate == RATE and np.max(np.abs(back - tone)) < 1e-4


def recorded_call(source: np.ndarray, seconds: float, start: int, jump_ms: int = 0) -> np.ndarray:
    """What a far end records of `source` sent in a loop: silence until the first packet,
    the talk (from `start` in the prompt), with the delay jumping by `jump_ms` halfway
    (a jitter buffer growing), and silence after the hangup."""
    talk = np.tile(source, int(seconds * RATE / len(source)) + 2)[start : start + int(seconds * RATE)]
    half = len(talk) // 2
    jump = np.zeros(RATE * jump_ms // 1000, dtype=np.float32)
    before, after = np.zeros(RATE * 8 // 10, np.float32), np.zeros(RATE // 2, np.float32)
    return np.concatenate([before, talk[:half], jump, talk[half:], after])


@pytest.mark.parametrize("jump_ms", [-80, -20, 20, 40, 80])
def test_heard_match_follows_the_delay_steps_of_a_jitter_buffer(lab_home: Path, jump_ms: int) -> None:
    """One frame inserted or dropped mid-call is no longer "another audio": best_match
    falls below the tests' 0.85, heard_match stays above it; the other prompt and silence
    stay well below."""
    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    phone, _ = read_wav(lab_home / ".calllab/prompts/phone.wav")
    coded = through_chain(browser, ["pcmu", "gsm"])
    if jump_ms > 0:
        heard = recorded_call(coded, 2.0, start=3000, jump_ms=jump_ms)
    else:  # the buffer dropped -jump_ms of audio halfway
        whole = recorded_call(coded, 2.0 - jump_ms / 1000, start=3000)
        half = len(whole) // 2
        heard = np.concatenate([whole[:half], whole[half - RATE * jump_ms // 1000 :]])
    assert best_match(browser, heard).correlation < 0.85
    assert heard_match(browser, heard) > 0.85
    assert heard_match(phone, heard) < 0.75
    assert heard_match(browser, np.zeros_like(heard)) == 0.0


@pytest.mark.parametrize(("seconds", "jump_ms"), [(5.0, 0), (30.0, 0), (30.0, 20)])
def test_pesq_scores_the_talk_period_like_its_offline_ceiling(
    lab_home: Path, seconds: float, jump_ms: int
) -> None:
    """A short and a long call of one chain score within 0.1 of the chain's offline ceiling;
    in a long call each loop of the prompt is aligned on its own, so a delay jump costs
    one loop, not the score."""
    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    coded = through_chain(browser, ["pcmu", "gsm"])
    ceiling = pesq_nb(browser, coded)
    heard = pesq_nb(browser, recorded_call(coded, seconds, start=9000, jump_ms=jump_ms))
    assert abs(heard - ceiling) < 0.1, (heard, ceiling)


def test_pesq_refuses_a_silent_recording(lab_home: Path) -> None:
    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    with pytest.raises(ValueError, match="less than 0.25 s of sound"):
        pesq_nb(browser, np.zeros(RATE * 3, np.float32))


def test_wideband_pesq_scores_16_khz_audio_and_hears_the_lost_band(lab_home: Path) -> None:
    """P.862.2 on the prompt at 16 kHz: a clean copy scores near its top (4.64), the same
    audio cut to telephone band (G.711's 4 kHz) clearly lower, noise lower still."""
    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    wide = resample(browser, RATE, WIDEBAND_RATE)  # the espeak prompt is 8 kHz: band to 4 kHz
    brighter = (np.sign(wide) * np.abs(wide) ** 0.7).astype(np.float32)  # harmonics above 4 kHz
    heard = np.roll(brighter, 8000)
    clean = pesq_wb(brighter, heard)
    narrow = pesq_wb(brighter, resample(resample(heard, WIDEBAND_RATE, RATE), RATE, WIDEBAND_RATE))
    noisy = pesq_wb(brighter, heard + np.random.default_rng(1).normal(0, 0.05, len(heard)).astype(np.float32))
    assert clean > 4.5 and clean > narrow + 0.15 and narrow > noisy + 2, (clean, narrow, noisy)
    with pytest.raises(ValueError, match="16000 Hz"):
        pesq_wb(browser, browser, RATE)


def test_pjmedias_own_codecs_offline_match_ffmpeg_and_sox_where_both_have_one(lab_home: Path) -> None:
    """The ceiling of Speex and iLBC comes from pjmedia's codecs reached through ctypes:
    pjmedia's G.711 and GSM through the same path score as FFmpeg's and sox's do."""
    from lab.analysis.ceiling import pjmedia

    browser, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    for codec in ("pcmu", "gsm"):
        ours = pesq_nb(browser, pjmedia(codec.upper(), 8000)(browser))
        assert abs(ours - pesq_nb(browser, through_chain(browser, [codec]))) < 0.05, codec
    scores = {c: pesq_nb(browser, through_chain(browser, [c])) for c in ("speex8", "speex16", "ilbc")}
    assert 3.2 < scores["speex8"] < 4.0 and 3.2 < scores["speex16"] < 4.0 and 2.6 < scores["ilbc"] < 3.4, (
        scores
    )
