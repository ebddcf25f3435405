import pytest

from lab.gateway.bridge import PcmFifo
from lab.sip.endpoint import frame_bytes


@pytest.mark.parametrize("rate", [8000, 16000])
def test_prebuffers_then_delivers_frames_in_order(rate: int) -> None:
    fifo = PcmFifo(frame_bytes(rate))
    assert fifo.frame_bytes == rate // 50 * 2

    def frame(n: int) -> bytes:
        return bytes([n]) * fifo.frame_bytes

    fifo.push(frame(1))
    assert fifo.pull() is None  # still prebuffering
    fifo.push(frame(2))
    assert fifo.pull() == frame(1)
    assert fifo.pull() == frame(2)
    assert fifo.pull() is None  # underrun: silence, then prebuffer again


def test_trims_when_the_reader_falls_behind() -> None:
    fifo = PcmFifo(frame_bytes(8000))

    def frame(n: int) -> bytes:
        return bytes([n]) * fifo.frame_bytes

    for n in range(10):
        fifo.push(frame(n))
    assert fifo.pull() == frame(8)  # only the newest two frames were kept
    assert fifo.pull() == frame(9)
