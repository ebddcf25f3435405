"""What each end said in its RTCP equals what tshark's RTCP dissector reads, on a real lab call and
on a call made here with RTCP-XR VoIP metrics; and it is shown beside the capture's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis import rtcp
from lab.analysis.columns import SAID, SAID_XR, model_json, stream_table
from lab.analysis.model import load
from lab.analysis.pcap import read
from lab.analysis.synth import (
    Datagram,
    ReportBlock,
    SynthCall,
    SynthStream,
    ntp_middle,
    receiver_report,
    sender_report,
    voip_metrics,
    write_pcap,
)
from lab.analysis.wireshark import fields
from lab.report import render

from .conftest import A, B

BLOCK_FIELDS = (
    "rtcp.ssrc.fraction",
    "rtcp.ssrc.cum_nr",
    "rtcp.ssrc.ext_high",
    "rtcp.ssrc.jitter",
    "rtcp.ssrc.lsr",
    "rtcp.ssrc.dlsr",
)
XR_FIELDS = (
    "rtcp.ssrc.fraction",
    "rtcp.ssrc.discarded",
    "rtcp.xr.voipmetrics.burstdensity",
    "rtcp.xr.voipmetrics.gapdensity",
    "rtcp.xr.voipmetrics.burstduration",
    "rtcp.xr.voipmetrics.gapduration",
    "rtcp.xr.voipmetrics.rtdelay",
    "rtcp.xr.voipmetrics.esdelay",
    "rtcp.xr.voipmetrics.rfactor",
    "rtcp.xr.voipmetrics.moslq",
    "rtcp.xr.voipmetrics.moscq",
)


def tshark_blocks(path: Path) -> dict[int, list[tuple[int, ...]]]:
    """Per frame (0-based), its report blocks as tshark reads them (a compound packet's SR or RR
    comes first, so its blocks' identifiers are the first of rtcp.ssrc.identifier's; an XR VoIP
    metrics block adds its loss rate to rtcp.ssrc.fraction)."""
    rows = fields(path, "rtcp.ssrc.fraction", "frame.number", "rtcp.ssrc.identifier", *BLOCK_FIELDS)
    found = {}
    for frame, ids, *columns in rows:
        values = [c.split(",") for c in columns]
        found[int(frame) - 1] = [
            (int(ids.split(",")[k], 16), *(int(v[k]) for v in values)) for k in range(len(values[2]))
        ]
    return found


def our_blocks(path: Path) -> dict[int, list[tuple[int, ...]]]:
    return {
        c.frame: [
            (b.source, b.fraction_lost, b.cumulative_lost, b.highest_seq, b.jitter, b.lsr, b.dlsr)
            for b in c.blocks
        ]
        for c in rtcp.read(read(path))
        if c.blocks
    }


def tshark_rtts(path: Path) -> dict[int, int]:
    """tshark's round trip (ms) per frame, where its conversation tracking found the SR (the
    last one of the conversation: it finds fewer than the capture holds)."""
    argv = ("-o", "rtcp.show_roundtrip_calculation:TRUE", "-o", "rtcp.roundtrip_min_threshhold:0")
    rows = fields(
        path, "rtcp.roundtrip-delay", "frame.number", "rtcp.roundtrip-delay", options=argv, two_pass=True
    )
    return {int(frame) - 1: int(ms) for frame, ms in rows}


def test_a_lab_calls_reports_equal_tsharks(lab_capture: Path) -> None:
    ours, theirs = our_blocks(lab_capture), tshark_blocks(lab_capture)
    assert len(theirs) == 20 and ours == theirs
    encrypted = {c.frame for c in rtcp.read(read(lab_capture)) if c.encrypted}
    assert encrypted == {int(f) - 1 for (f,) in fields(lab_capture, "srtcp", "frame.number")}


def test_a_lab_calls_streams_say_what_their_receivers_reported(lab_capture: Path) -> None:
    """pjsua2 legs: plain RTCP on the RTP port + 1, the last report per stream; the browser leg's
    SRTCP is said to be encrypted."""
    model = load(lab_capture)
    theirs = tshark_blocks(lab_capture)
    rtts = tshark_rtts(lab_capture)
    compounds = rtcp.read(read(lab_capture))
    for s in model.streams:
        back = [c for c in compounds if c.src == s.dst and c.dst == s.src]
        if s.src_party == "Browser" or s.dst_party == "Browser":
            assert s.said.why == rtcp.ENCRYPTED and all(c.encrypted for c in back)
            continue
        assert {c.sport for c in back} == {s.dst_port + 1} and {c.dport for c in back} == {s.src_port + 1}
        reports = [(c.frame, row) for c in back for row in theirs.get(c.frame, []) if row[0] == s.ssrc]
        last_frame, last = reports[-1]
        assert s.said.reports == len(reports) == 3
        block = s.said.block
        assert block is not None
        assert (block.fraction_lost, block.cumulative_lost, block.highest_seq, block.jitter) == last[1:5]
        assert s.said.jitter_ms == pytest.approx(last[4] / 8000 * 1000)
        assert s.said.rtt_ms is not None and 0 <= s.said.rtt_ms < 1
        if last_frame in rtts:
            # tshark truncates the gap between the packets and the DLSR to whole ms, each
            assert abs(s.said.rtt_ms - rtts[last_frame]) < 2
    assert sum(1 for s in model.streams if s.said.why == "") == 4


@pytest.fixture
def xr_call(tmp_path: Path) -> Path:
    """A call whose callee reports the caller's stream (25 of 500 lost, 3 ms of jitter) in an
    RR 30 ms of round trip after the caller's SR, then in a last SR with RTCP-XR VoIP metrics."""
    lost = frozenset(range(10, 500, 20))
    caller = SynthStream(A, 4000, B, 5000, 0x1111, lost=lost, jitter_ms=3, seed=2)
    callee = SynthStream(B, 5000, A, 4000, 0x2222, seed=3)
    call = SynthCall(streams=[caller, callee])
    t = call.t0 + 0.6
    sr_at = t + 2.0
    first = ReportBlock(0x1111, 5, 5, 1000 + 120, 23, ntp_middle(sr_at), 30802)  # 470.0015 ms
    last = ReportBlock(0x1111, 13, 25, 1000 + 499, 24, ntp_middle(sr_at), int(7.87 * 65536))
    metrics = {"loss": 13, "discard": 3, "burst_density": 40, "gap_density": 10, "burst_ms": 60}
    metrics |= {"gap_ms": 2000, "rtt_ms": 31, "esd_ms": 75, "r_factor": 78, "mos_lq": 39, "mos_cq": 37}
    rtcp_rows = [
        Datagram(sr_at, A, 4001, B, 5001, sender_report(0x1111, sr_at, 160000 + 16000, 100)),
        Datagram(sr_at + 0.5, B, 5001, A, 4001, receiver_report(0x2222, first)),
        Datagram(
            t + 9.9,
            B,
            5001,
            A,
            4001,
            sender_report(0x2222, t + 9.9, 240000, 500, last) + voip_metrics(0x2222, 0x1111, metrics),
        ),
    ]
    return write_pcap(tmp_path / "xr.pcap", [*call.datagrams(), *rtcp_rows])


def test_a_call_with_xr_equals_tshark(xr_call: Path) -> None:
    assert our_blocks(xr_call) == tshark_blocks(xr_call)
    (xr,) = [x for c in rtcp.read(read(xr_call)) for x in c.xr]
    (theirs,) = fields(xr_call, "rtcp.xr.voipmetrics.rfactor", *XR_FIELDS)
    loss, discarded = int(theirs[0].split(",")[-1]), int(theirs[1])
    assert (xr.loss_rate_pct, xr.discard_rate_pct) == (
        pytest.approx(loss / 256 * 100, abs=1e-3),
        pytest.approx(discarded / 256 * 100, abs=1e-3),
    )
    theirs = theirs[2:]
    assert (
        xr.burst_density_pct,
        xr.gap_density_pct,
        xr.burst_duration_ms,
        xr.gap_duration_ms,
        xr.round_trip_ms,
        xr.end_system_delay_ms,
        xr.r_factor,
        xr.mos_lq,
        xr.mos_cq,
    ) == (
        pytest.approx(int(theirs[0]) / 256 * 100, abs=1e-3),
        pytest.approx(int(theirs[1]) / 256 * 100, abs=1e-3),
        *(int(v) for v in theirs[2:7]),
        float(theirs[7]),
        float(theirs[8]),
    )
    # both of B's reports echo A's SR 30 ms of round trip later; tshark truncates to whole ms
    rtts = tshark_rtts(xr_call)
    assert set(rtts) == {c.frame for c in rtcp.read(read(xr_call)) if c.src == B}
    assert all(abs(ms - 30) < 2 for ms in rtts.values())


def test_a_stream_shows_what_its_receiver_said_beside_the_capture(xr_call: Path) -> None:
    model = load(xr_call, names={})
    (caller,) = [s for s in model.streams if s.ssrc == 0x1111]
    (callee,) = [s for s in model.streams if s.ssrc == 0x2222]
    assert caller.stats.lost == 25 and caller.said.block is not None
    assert (caller.said.block.cumulative_lost, caller.said.reports) == (25, 2)
    assert caller.said.jitter_ms == pytest.approx(24 / 8000 * 1000)
    assert caller.said.rtt_ms == pytest.approx(30, abs=0.02)
    assert caller.said.xr is not None and (caller.said.xr.r_factor, caller.said.xr.mos_lq) == (78, 3.9)
    assert callee.said.why == "no RTCP report on it in the capture"
    row = model_json(model)["streams"]
    assert isinstance(row, list)
    said = {r["ssrc"]: r for r in row}
    assert said[0x1111]["lost"] == said[0x1111]["rtcp_cumulative_lost"] == 25
    assert (said[0x1111]["rtcp_fraction_lost_pct"], said[0x1111]["xr_loss_rate_pct"]) == (5.078, 5.078)
    assert said[0x1111]["rtcp_rtt_ms"] == pytest.approx(30, abs=0.02)
    assert said[0x2222]["rtcp_cumulative_lost"] is None
    table = stream_table(model.streams, SAID)
    assert (
        table.rows[[s.ssrc for s in model.streams].index(0x2222)][2]
        == "n/a: no RTCP report on it in the capture"
    )
    xr_table = stream_table(model.streams, SAID_XR)
    assert "3.9" in xr_table.rows[[s.ssrc for s in model.streams].index(0x1111)]
    html = render(model)
    assert "What each receiver said (RTCP)" in html and "RTCP-XR VoIP metrics" in html


def test_srtcp_is_not_read_as_rtcp() -> None:
    """Its first header is in clear; the rest, its index and its tag do not add up as RTCP."""
    clear = receiver_report(0x1111, ReportBlock(0x2222, 0, 0, 1, 0))
    srtcp = clear[:8] + bytes(range(24)) + b"\x80\x00\x00\x01" + bytes(10)
    assert rtcp.parse(srtcp) is None
    assert rtcp.parse(clear) is not None
