from collections.abc import Callable

import numpy as np
import pytest

from lab.gateway.bridge import PcmFifo
from lab.sip.endpoint import frame_bytes


def frames_of(fifo: PcmFifo) -> Callable[[int], bytes]:
    return lambda n: bytes([n]) * fifo.frame_bytes


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_cushion_of_one_prebuffers_then_delivers_frames_in_order(rate: int) -> None:
    fifo = PcmFifo(frame_bytes(rate), cushion=1)
    assert fifo.frame_bytes == rate // 50 * 2
    frame = frames_of(fifo)
    fifo.push(frame(1))
    assert fifo.pull() is None  # still prebuffering
    fifo.push(frame(2))
    assert fifo.pull() == frame(1)
    assert fifo.pull() == frame(2)
    assert fifo.pull() is None  # underrun: silence, then prebuffer again
    assert fifo.underruns == 1


def test_without_a_cushion_plays_the_first_frame_at_once_and_deepens_after_an_underrun() -> None:
    fifo = PcmFifo(frame_bytes(8000), cushion=0)
    frame = frames_of(fifo)
    fifo.push(frame(1))
    assert fifo.pull() == frame(1)  # no cushion: no wait
    assert fifo.pull() is None  # the writer was late
    assert (fifo.underruns, fifo.cushion) == (1, 1)
    fifo.push(frame(2))
    assert fifo.pull() is None  # now it waits for one frame more
    fifo.push(frame(3))
    assert fifo.pull() == frame(2)
    for _ in range(5):  # never deeper than max_cushion
        while fifo.pull() is None:
            fifo.push(frame(9))
        while fifo.pull() is not None:
            pass
    assert fifo.cushion == fifo.max_cushion == 3


def steady(fifo: PcmFifo, pulls: int, first: int = 0) -> list[bytes | None]:
    """The writer in step with the reader: a frame pushed after each pull."""
    frame = frames_of(fifo)
    pulled = []
    for n in range(first, first + pulls):
        pulled.append(fifo.pull())
        fifo.push(frame(n))
    return pulled


def test_a_cushion_not_needed_shrinks_and_what_waited_in_vain_is_dropped() -> None:
    fifo = PcmFifo(frame_bytes(8000), min_cushion=0, window=10, quiet=1 << 15)  # all a pause
    frame = frames_of(fifo)
    fifo.push(frame(0))
    fifo.push(frame(1))  # primed with its cushion: a frame waits after every pull
    pulled = steady(fifo, 30, first=2)
    assert fifo.underruns == 0 and fifo.cushion == 0
    # after the first calm window: the cushion goes, and what waited beyond a 5 ms margin
    assert fifo.margin == 80 and fifo.dropped_bytes == fifo.frame_bytes - fifo.margin
    assert pulled[:11] == [frame(n) for n in range(11)]
    assert pulled[11] == frame(11)[240:] + frame(12)[:240]  # 240 bytes (15 ms) less delay
    assert pulled[29] == frame(29)[240:] + frame(30)[:240]  # and no more dropped since


def test_after_an_underrun_the_cushion_stays_twice_as_long() -> None:
    fifo = PcmFifo(frame_bytes(8000), cushion=0, min_cushion=0, window=10)
    frame = frames_of(fifo)
    fifo.push(frame(0))
    fifo.pull()
    assert fifo.pull() is None and fifo.cushion == 1  # underrun
    fifo.push(frame(1))
    fifo.push(frame(2))
    steady(fifo, 10, first=3)
    assert fifo.cushion == 1  # one calm window is not enough now
    steady(fifo, 10, first=13)
    assert fifo.cushion == 0 and fifo.underruns == 1


def test_what_waited_in_vain_is_dropped_in_a_pause_not_mid_speech() -> None:
    fifo = PcmFifo(frame_bytes(8000), cushion=2, window=10)
    frame = frames_of(fifo)  # frame(n) is n * 257 in every sample: 0 and 1 are quiet
    for _ in range(3):
        fifo.push(frame(9))
    steady(fifo, 10, first=10)  # loud: a frame more than the cushion of 1 waited in vain
    assert fifo.cushion == 1 and fifo.dropped_bytes == 0
    steady(fifo, 5, first=30)
    assert fifo.dropped_bytes == 0  # still talking
    quiet_pulls = 0
    while fifo.dropped_bytes == 0 and quiet_pulls < 20:
        fifo.pull()
        fifo.push(frame(0))
        quiet_pulls += 1
    assert fifo.dropped_bytes == fifo.frame_bytes - fifo.margin
    # cut once 200 ms of pause went by (the first quiet frame pulled is the 3rd: 2 were queued)
    assert 2 + 10 <= quiet_pulls <= 2 + 11


def test_trims_when_the_reader_falls_behind() -> None:
    fifo = PcmFifo(frame_bytes(8000))
    frame = frames_of(fifo)
    for n in range(10):
        fifo.push(frame(n))
    fade = fifo.fade * 2
    first = fifo.pull()
    assert first is not None
    assert first[fade:] == frame(8)[fade:]  # only the newest two frames were kept ...
    assert fifo.pull() == frame(9)
    # ... of audio nobody listened to yet: not counted as dropped
    assert (fifo.dropped_bytes, fifo.unheard_bytes) == (0, 8 * fifo.frame_bytes)


def test_a_cut_fades_into_what_follows_so_it_makes_no_click() -> None:
    """A 400 Hz tone cut mid-waveform: sample to sample it moves no more than the tone does."""
    rate = 16000
    fifo = PcmFifo(frame_bytes(rate))
    tone = (np.sin(2 * np.pi * 400 * np.arange(rate) / rate) * 10000).astype("<i2")
    step = rate // 50
    fifo.push(tone[: 2 * step].tobytes())
    played = [fifo.pull()]
    for start in range(2 * step, 8 * step, 310):  # the writer catches up in a burst of odd sizes
        fifo.push(tone[start : start + 310].tobytes())
    played += iter(fifo.pull, None)
    assert fifo.dropped_bytes > 3 * fifo.frame_bytes
    heard = np.frombuffer(b"".join(p for p in played if p), dtype="<i2").astype(float)
    most = np.max(np.abs(np.diff(tone.astype(float))))
    assert np.max(np.abs(np.diff(heard))) <= 1.05 * most
