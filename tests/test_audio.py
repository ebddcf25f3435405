from pathlib import Path

import numpy as np

from lab.audio import RATE, best_match, pesq_nb, read_wav, write_wav


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
