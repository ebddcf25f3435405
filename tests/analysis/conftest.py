from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis.synth import SynthCall, SynthStream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED_CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures"
A, B = "10.0.0.1", "10.0.0.2"

#: Generated calls with known impairments: name -> (streams, SDP in the capture?)
SYNTHETIC: dict[str, tuple[list[SynthStream], bool]] = {
    "loss_and_jitter": (
        [
            SynthStream(A, 4000, B, 5000, 0x1111, jitter_ms=3, lost=frozenset(range(10, 500, 20)), seed=2),
            SynthStream(B, 5000, A, 4000, 0x2222, jitter_ms=1, seed=3),
        ],
        True,
    ),
    "sequence_wrap": (
        [SynthStream(A, 4000, B, 5000, 0x3333, first_seq=65400, packets=400, lost=frozenset({99, 100, 101}))],
        True,
    ),
    "timestamp_wrap": (
        [SynthStream(A, 4000, B, 5000, 0x7777, first_ts=0xFFFFFF00 - 16000, jitter_ms=1)],
        True,
    ),
    "comfort_noise_and_dtmf": (
        [
            SynthStream(
                A,
                4000,
                B,
                5000,
                0x4444,
                jitter_ms=1,
                comfort_noise=frozenset(range(50, 60)),
                dtmf=frozenset(range(100, 110)),
            )
        ],
        True,
    ),
    "opus_48k_dynamic_pt": (
        [SynthStream(A, 4000, B, 5000, 0x5555, pt=111, codec="opus", clock=48000, jitter_ms=2)],
        True,
    ),
    "reordered": (
        [SynthStream(A, 4000, B, 5000, 0x6666, swap=frozenset({20, 50, 51, 300}), jitter_ms=0.3)],
        True,
    ),
    "no_sdp_in_capture": (
        [SynthStream(A, 4000, B, 5000, 0x8888, jitter_ms=2, lost=frozenset({7, 8}))],
        False,
    ),
}


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("synth")
    return {
        name: SynthCall(streams=streams, with_sdp=sdp).write(folder / f"{name}.pcap")
        for name, (streams, sdp) in SYNTHETIC.items()
    }


@pytest.fixture
def lab_capture() -> Path:
    """A real call through the lab (1 s of speech), recorded with dumpcap."""
    return FIXTURES / "lab_call.pcapng"


def shared(name: str) -> Path:
    path = SHARED_CAPTURES / name
    if not path.exists():
        pytest.skip(f"public sample capture {path} is not on this machine")
    return path
