"""The one column spec: every view's numbers come from it, and where Wireshark computes none
it says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.analysis.columns import BRIEF, JSON, REPORT, STREAM_COLUMNS, model_json, stream_table, summary
from lab.analysis.model import load
from lab.analysis.rtp import RtpStats, stream_stats
from lab.sip.sdp import Codec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lab_call.pcapng"


def stats(n: int, marker: bool = False, clock: int = 8000) -> RtpStats:
    """n packets of 20 ms, 160 samples apart, arriving 0.5 ms late every other packet."""
    arrival = np.arange(n) * 0.020 + (np.arange(n) % 2) * 0.0005
    return stream_stats(
        arrival,
        np.arange(n) + 1000,
        np.arange(n) * 160 + 5000,
        np.zeros(n, dtype=np.int64),
        np.full(n, marker),
        np.full(n, clock, dtype=np.int64),
    )[0]


def test_stats_say_why_they_have_no_numbers() -> None:
    measured = stats(50)
    assert (measured.why_no_delta, measured.why_no_jitter, measured.why_no_skew) == ("", "", "")
    assert measured.min_delta_ms == pytest.approx(19.5) and measured.max_delta_ms == pytest.approx(20.5)

    marked = stats(50, marker=True)  # as aiortc sends audio
    assert marked.why_no_delta == marked.why_no_jitter == "every packet carries the RTP marker bit"
    assert marked.why_no_skew == "" and marked.max_skew_ms == pytest.approx(-0.5)
    assert (marked.min_jitter_ms, marked.max_jitter_ms) == (-1.0, 0.0)  # Wireshark's placeholders stay

    unclocked = stats(50, clock=0)
    assert unclocked.why_no_delta == ""
    assert unclocked.why_no_jitter == unclocked.why_no_skew == "clock rate unknown"

    both = stats(50, marker=True, clock=0)
    assert both.why_no_jitter == "clock rate unknown; every packet carries the RTP marker bit"
    assert stats(1).why_no_delta == stats(1).why_no_jitter == stats(1).why_no_skew == "a single packet"


def test_cells_format_values_and_say_why_instead_of_placeholders() -> None:
    model = load(FIXTURE, fallback_pts={96: Codec(96, "opus", 48000)})
    opus = next(s for s in model.streams if s.codec == "opus")
    gsm = next(s for s in model.streams if s.codec == "GSM")
    jitter = STREAM_COLUMNS["jitter_ms"]
    st = gsm.stats
    assert jitter.cell(gsm) == f"{st.min_jitter_ms:.3f} / {st.mean_jitter_ms:.3f} / {st.max_jitter_ms:.3f}"
    assert jitter.title == "min/mean/max jitter (ms)"
    assert jitter.cell(opus) == "n/a: every packet carries the RTP marker bit"
    assert jitter.cell(opus, why=False) == "n/a"
    assert STREAM_COLUMNS["max_skew_ms"].text(gsm) == f"{st.max_skew_ms:.3f} ms"
    assert STREAM_COLUMNS["ssrc"].cell(gsm) == f"0x{gsm.ssrc:08X}"
    assert summary(opus) == (
        f"{opus.label}: packets 57, lost 0, loss 0.00 %, "
        f"min/mean/max jitter n/a (every packet carries the RTP marker bit), MOS {opus.quality.mos:.2f}"
    )
    table = stream_table(model.streams, BRIEF)
    assert table.header == ["stream", "packets", "lost", "loss (%)", "min/mean/max jitter (ms)", "R", "MOS"]
    assert table.left == frozenset({0}) and len(table.rows) == len(model.streams)
    assert stream_table(model.streams, REPORT).left == frozenset({0, 1, 2})


def test_json_streams_are_the_spec_columns_with_wireshark_values() -> None:
    model = load(FIXTURE)
    data = model_json(model)
    for s, row in zip(model.streams, data["streams"], strict=True):  # type: ignore[call-overload]
        assert tuple(row) == JSON
        assert row["ssrc"] == s.ssrc and row["src_ip"] == s.src and row["dst_port"] == s.dst_port
        assert row["lost_pct"] == round(s.stats.lost_pct, 3)
        assert row["min_jitter_ms"] == s.stats.min_jitter_ms and row["mos"] == s.quality.mos
    browser = data["streams"][0]  # type: ignore[index]
    assert (browser["min_delta_ms"], browser["max_delta_ms"], browser["min_jitter_ms"]) == (-1.0, 0.0, -1.0)
