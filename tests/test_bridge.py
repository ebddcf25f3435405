from lab.gateway.bridge import FRAME_BYTES, PcmFifo


def frame(n: int) -> bytes:
    return bytes([n]) * FRAME_BYTES


def test_prebuffers_then_delivers_frames_in_order() -> None:
    fifo = PcmFifo()
    fifo.push(frame(1))
    assert fifo.pull() is None  # still prebuffering
    fifo.push(frame(2))
    assert fifo.pull() == frame(1)
    assert fifo.pull() == frame(2)
    assert fifo.pull() is None  # underrun: silence, then prebuffer again


def test_trims_when_the_reader_falls_behind() -> None:
    fifo = PcmFifo()
    for n in range(10):
        fifo.push(frame(n))
    assert fifo.pull() == frame(8)  # only the newest TRIM_TO frames were kept
    assert fifo.pull() == frame(9)
