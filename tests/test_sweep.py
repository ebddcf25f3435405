"""calllab sweep without a lab: the grid, a row from a recorded call, the CSV and JSON, the
runner's limit and what an interrupted sweep keeps."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from lab import plots
from lab.analysis.columns import hop_table, network_table
from lab.analysis.model import load
from lab.analysis.quality import Pesq
from lab.analysis.synth import Datagram, SynthStream, write_pcap
from lab.cli import main
from lab.config import CALL_HEADER, LabConfig
from lab.report import render_sweep
from lab.scenario import CallResult
from lab.sweep import (
    Point,
    Results,
    Sweep,
    SweepError,
    columns,
    read_csv,
    row_of,
    run,
    summary,
)

NUMBER = "+79001234567"
PSTN, NETWORK, PHONE = "127.0.0.4", "127.0.0.9", "127.0.0.5"


def test_the_grid_is_codecs_times_values_times_repeats_each_repeat_its_own_seed() -> None:
    sweep = Sweep(
        NUMBER, "mobile", "both", (("codec", ("opus", "PCMU")),), (("loss", ("0", "2", "5%")),), 2, 7
    )
    points = sweep.points()
    assert len(points) == 2 * 3 * 2 and [p.index for p in points] == list(range(12))
    assert [(dict(p.codecs)["codec"], p.impairment.loss, p.repeat) for p in points[:6]] == [
        ("opus", 0.0, 0),
        ("opus", 0.02, 0),
        ("opus", 0.05, 0),
        ("pcmu", 0.0, 0),
        ("pcmu", 0.02, 0),
        ("pcmu", 0.05, 0),
    ]
    assert {p.impairment.seed for p in points[:6]} == {7} and {p.impairment.seed for p in points[6:]} == {8}
    assert sweep.points() == points  # a rerun is the same grid, seeds included
    assert points[0].impairments == ()  # a perfect network: the media goes direct
    five = points[2].impairments
    assert [(i.leg, i.direction, i.impairment.spec()) for i in five] == [
        ("mobile", "to-phone", "loss=5%,seed=7"),
        ("mobile", "to-browser", "loss=5%,seed=1007"),
    ]
    assert points[2].call_kwargs() == {"codec": "opus", "impairments": five}


def test_several_parameters_multiply_and_the_first_with_several_values_is_the_x_axis() -> None:
    sweep = Sweep(
        NUMBER, "sip", "to-phone", (), (("delay", ("80",)), ("loss", ("1", "3")), ("burst", ("1", "4")))
    )
    points = sweep.points()
    assert [p.impairment.spec() for p in points] == [
        "loss=1%,burst=1,delay=80ms,seed=1",
        "loss=1%,burst=4,delay=80ms,seed=1",
        "loss=3%,burst=1,delay=80ms,seed=1",
        "loss=3%,burst=4,delay=80ms,seed=1",
    ]
    assert sweep.parameter is not None and sweep.parameter.name == "loss"
    assert sweep.line_columns == ["burst"]
    assert [i.direction for i in points[0].impairments] == ["to-phone"]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (Sweep(NUMBER, "air", values=(("loss", ("1",)),)), "--leg 'air': one of browser, sip, mobile"),
        (Sweep(NUMBER, direction="up"), "--direction 'up': one of to-phone, to-browser, both"),
        (Sweep(NUMBER, codecs=(("codec", ("g729",)),)), "--codec 'g729': one of opus, pcmu, pcma"),
        (Sweep(NUMBER, codecs=(("sip-codec", ("opus",)),)), "--sip-codec .opus.: one of pcmu, pcma, g722"),
        (Sweep(NUMBER, values=(("colour", ("red",)),)), "parameter 'colour': one of loss, burst, delay"),
        (Sweep(NUMBER, values=(("loss", ("0", "120")),)), "--loss '120': loss=120%: must be from 0% up to"),
        (Sweep(NUMBER, values=(("delay", ("-5",)),)), "--delay '-5': delay and jitter must be 0 ms or more"),
        (
            Sweep(NUMBER, values=(("jitter", ("lots",)),)),
            "--jitter 'lots': jitter=lots: expected a number of ms",
        ),
        (Sweep(NUMBER, repeat=0), "--repeat 0: 1 or more"),
        (Sweep("call me", values=(("loss", ("1",)),)), "--number: 'call me' is not a phone number"),
    ],
)
def test_bad_input_names_the_option_and_what_it_accepts(sweep: Sweep, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        sweep.points()


def test_bad_input_on_the_command_line_is_one_line_exit_2_and_nothing_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lab(*_: object) -> None:
        raise AssertionError("the sweep started")

    monkeypatch.setattr("lab.sweep.run_in_lab", no_lab)
    for argv, message in [
        (["--leg", "mobile", "--loss", "0,150"], "--loss '150': loss=150%: must be from 0% up to"),
        (["--leg", "moon", "--loss", "5"], "--leg 'moon': one of browser, sip, mobile"),
        (["--codec", "opus,amr"], "--codec 'amr': one of opus, pcmu, pcma"),
        (["--loss", "5"], "--leg: the leg the impairment is on"),
        (["--leg", "sip", "--delay", "-20"], "--delay '-20': delay and jitter must be 0 ms or more"),
        (["--parallel", "999"], f"--parallel 999: 1 to {LabConfig().calls_at_once}"),
    ]:
        assert main(["sweep", "--number", NUMBER, *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


# --- a row from a recorded call ---------------------------------------------------------

#: Two calls on the mobile leg at once, each through the Mobile network, as a sweep's
#: capture holds them: "mine" lost packets 10, 11 and 40 of 100 on the way to the phone and
#: 5 on the way back, 20 ms later than sent; the other call lost nothing.
MINE_LOST_TO_PHONE = frozenset({10, 11, 40})
MINE_LOST_TO_BROWSER = frozenset({5})


def _sip(t: float, src: str, dst: str, lines: list[str], call: str, sdp: str = "") -> Datagram:
    head = [*lines, f"Call-ID: {call}@lab", f"Content-Length: {len(sdp)}"]
    if sdp:
        head.insert(-1, "Content-Type: application/sdp")
    return Datagram(t, src, 5060, dst, 5060, ("\r\n".join(head) + "\r\n\r\n" + sdp).encode())


def _call(
    lab_call: str, pstn_port: int, phone_port: int, ssrc: int, lost: tuple[frozenset[int], ...]
) -> list[Datagram]:
    t0 = 1_700_000_000.0
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 {0}\r\ns=-\r\nt=0 0\r\n"
        "m=audio {1} RTP/AVP 3\r\nc=IN IP4 {2}\r\na=rtpmap:3 GSM/8000\r\n"
    )
    uri = f"sip:{NUMBER}@{PHONE}"
    dialog = [
        f"From: <sip:pstn@{PSTN}>;tag=a",
        f"To: <{uri}>",
        f"Via: SIP/2.0/UDP {PSTN}:5060;branch=z9hG4bK{ssrc}",
    ]
    invite = [f"INVITE {uri} SIP/2.0", *dialog, "CSeq: 1 INVITE", f"{CALL_HEADER}: {lab_call}"]
    ok = ["SIP/2.0 200 OK", *dialog, "CSeq: 1 INVITE"]
    out = [
        _sip(t0, PSTN, PHONE, invite, lab_call, sdp.format(PSTN, pstn_port, NETWORK)),
        _sip(t0 + 0.1, PHONE, PSTN, ok, lab_call, sdp.format(PHONE, phone_port, NETWORK)),
    ]
    legs = [
        ((PSTN, pstn_port), (PHONE, phone_port), ssrc, lost[0]),
        ((PHONE, phone_port), (PSTN, pstn_port), ssrc + 1, lost[1]),
    ]
    for (src, sport), (dst, dport), s, dropped in legs:
        into = SynthStream(src, sport, NETWORK, dport, s, pt=3, codec="GSM", packets=100, payload_bytes=33)
        onward = dataclasses.replace(into, src=NETWORK, sport=sport, dst=dst, start=0.020, lost=dropped)
        out += into.datagrams(t0 + 0.2) + onward.datagrams(t0 + 0.2)
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> CallResult:
    path = tmp_path_factory.mktemp("sweep") / "two-calls.pcap"
    none = frozenset[int]()
    write_pcap(
        path,
        _call("mine", 30002, 40000, 0x1000, (MINE_LOST_TO_PHONE, MINE_LOST_TO_BROWSER))
        + _call("other", 30102, 40002, 0x2000, (none, none)),
    )
    model = load(path)
    pesq = (
        Pesq("Browser -> Mobile phone", 2.11, 2.53, ("pcmu", "pcmu", "gsm")),
        Pesq("Mobile phone -> Browser", 2.42, 2.66, ("gsm", "pcmu", "pcmu")),
    )
    statuses = [{"status": s, "t": 0.0, "sip_code": None, "reason": ""} for s in ("ESTABLISHED", "FINISH")]
    return CallResult(
        call_id="mine",
        number=NUMBER,
        final_status="FINISH",
        sip_code=200,
        reason="hangup",
        statuses=statuses,
        impairments=[
            {
                "leg": "mobile",
                "direction": d,
                "network": "Mobile network",
                "spec": "loss=3%",
                "packets": 102,
                "dropped": len(lost) + 1,  # an RTCP packet too
                "dropped_seqs": [1000 + n for n in sorted(lost)],
            }
            for d, lost in (("to-phone", MINE_LOST_TO_PHONE), ("to-browser", MINE_LOST_TO_BROWSER))
        ],
        model=dataclasses.replace(model, pesq=pesq),
    )


def _points(*losses: str) -> list[Point]:
    return Sweep(NUMBER, "mobile", "both", (("codec", ("pcmu",)),), (("loss", losses),)).points()


def _point() -> Point:
    return _points("3")[0]


def test_a_row_has_the_point_and_what_the_call_measured_on_its_own_streams(recorded: CallResult) -> None:
    assert recorded.model is not None and len(recorded.model.hops) == 4  # both calls' hops are there
    row = row_of(_point(), recorded)
    assert list(row) == columns()
    assert {
        k: row[k] for k in ("codec", "leg", "direction", "spec", "loss_pct", "call_id", "status", "ok")
    } == {
        "codec": "pcmu",
        "leg": "mobile",
        "direction": "both",
        "spec": "loss=3%,seed=1",
        "loss_pct": 3.0,
        "call_id": "mine",
        "status": "FINISH",
        "ok": True,
    }
    # On the wire, exactly the RTP packets the network said it dropped; at the receiver, the same loss.
    assert (row["to_phone_sent"], row["to_phone_lost"], row["to_phone_dropped"]) == (100, 3, 3)
    assert (row["to_browser_sent"], row["to_browser_lost"], row["to_browser_dropped"]) == (100, 1, 1)
    assert row["to_phone_loss_pct"] == pytest.approx(3.0) and row["to_browser_loss_pct"] == pytest.approx(1.0)
    assert row["to_phone_delay_ms"] == pytest.approx(20.0, abs=0.01)
    assert row["to_phone_codec"] == "GSM" and row["to_phone_mos"] < row["to_browser_mos"] < 4.0
    assert (row["to_phone_pesq"], row["to_phone_ceiling"], row["to_browser_pesq"]) == (2.11, 2.53, 2.42)


def test_a_call_without_a_capture_keeps_its_point_and_says_why(recorded: CallResult) -> None:
    failed = dataclasses.replace(
        recorded, model=None, final_status="FAILED", statuses=[], reason="503 gateway busy"
    )
    row = row_of(_point(), failed)
    assert (row["ok"], row["status"], row["reason"], row["to_phone_pesq"]) == (
        False,
        "FAILED",
        "503 gateway busy",
        None,
    )
    assert row["to_phone_dropped"] == 3  # what the network reported still counts


def test_a_call_whose_media_missed_its_network_is_no_impaired_measurement(recorded: CallResult) -> None:
    direct = [dict(r, packets=0, dropped=0) for r in recorded.impairments]
    row = row_of(_point(), dataclasses.replace(recorded, impairments=direct))
    assert not row["ok"] and row["status"] == "FINISH"
    assert row["reason"] == (
        "mobile to-phone: Mobile network: it carried no packets: the media took the direct path"
    )


def test_csv_and_json_hold_every_column_of_every_row(recorded: CallResult, tmp_path: Path) -> None:
    results = Results(tmp_path / "sweep.csv")
    rows = [row_of(p, recorded) for p in _points("3", "0")]
    for row in reversed(rows):
        results.add(row)
    results.close()
    text = (tmp_path / "sweep.csv").read_text()
    assert text.splitlines()[0] == ",".join(columns())
    assert read_csv(tmp_path / "sweep.csv") == list(reversed(rows))  # as they finished
    as_json = json.loads(results.json())
    assert [list(r) for r in as_json] == [columns(), columns()] and as_json[0]["loss_pct"] == 3.0


def _fake_result(call_id: str) -> CallResult:
    statuses = [{"status": s, "t": 0.0, "sip_code": None, "reason": ""} for s in ("ESTABLISHED", "FINISH")]
    return CallResult(call_id, NUMBER, "FINISH", 200, "hangup", statuses=statuses)


async def test_an_interrupted_sweep_keeps_every_finished_row_and_says_which_failed(tmp_path: Path) -> None:
    points = Sweep(NUMBER, "mobile", values=(("loss", ("0", "1", "2", "3", "4", "5")),)).points()
    started = asyncio.Event()

    async def call(point: Point) -> CallResult:
        if point.index == 2:
            raise ConnectionError("the gateway closed the connection")
        if point.index == 4:  # the call in flight when Ctrl-C comes
            started.set()
            await asyncio.Event().wait()
        return _fake_result(f"call-{point.index}")

    results = Results(tmp_path / "sweep.csv")
    sweep = asyncio.ensure_future(run(points, call, results, concurrency=1))
    await asyncio.wait_for(started.wait(), 5)
    sweep.cancel()  # what Ctrl-C does to asyncio.run's task
    with pytest.raises(asyncio.CancelledError):
        await sweep
    results.close()
    kept = read_csv(tmp_path / "sweep.csv")
    assert [r["index"] for r in kept] == [0, 1, 2, 3]
    assert [r["ok"] for r in kept] == [True, True, False, True]
    assert kept[2]["reason"] == "ConnectionError: the gateway closed the connection"
    said = summary(results.rows, len(points))
    assert said[0] == "4 of 6 calls done, 1 failed"
    assert "#2" in said[1] and "loss=2%" in said[1] and "the gateway closed" in said[1]
    assert said[-1] == "  2 calls not finished (interrupted: those in flight were hung up)"


async def test_the_runner_never_has_more_calls_in_flight_than_allowed() -> None:
    points = Sweep(NUMBER, "mobile", values=(("loss", tuple(str(v) for v in range(10))),)).points()
    in_flight, most = 0, 0

    async def call(point: Point) -> CallResult:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return _fake_result(str(point.index))

    results = await run(points, call, Results(), concurrency=3)
    assert most == 3 and sorted(r["index"] for r in results.rows) == list(range(10))


def test_the_plots_draw_a_median_line_per_codec_with_its_ceiling() -> None:
    rows = [
        {
            "ok": True,
            "codec": codec,
            "loss_pct": loss,
            "to_phone_pesq": pesq + r / 10,
            "to_phone_ceiling": 2.5,
        }
        for codec, base in (("opus", 2.5), ("pcmu", 2.4))
        for loss in (0.0, 5.0)
        for r, pesq in enumerate([base - loss / 10] * 3)
    ] + [{"ok": False, "codec": "opus", "loss_pct": 5.0, "to_phone_pesq": None}]
    fig = plots.sweep(rows, "loss_pct", ["codec"], "pesq", "loss (%)")
    to_phone = fig.axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in to_phone.lines}  # type: ignore[arg-type]
    assert lines["opus"] == pytest.approx([2.6, 2.1]) and lines["pcmu"] == pytest.approx([2.5, 2.0])
    assert lines["opus ceiling"] == pytest.approx([2.5, 2.5])
    html = render_sweep(rows, "Sweep", "loss_pct", "loss (%)", ["codec"])
    assert html.count("<img") == 2 and "Failed calls" in html


def test_the_hop_and_network_tables_show_what_the_networks_did(recorded: CallResult) -> None:
    assert recorded.model is not None
    hops = hop_table(recorded.model.hops)
    mine = [r for r in hops.rows if r[0] == "PSTN gateway -> Mobile network -> Mobile phone" and r[4] == "3"]
    assert len(mine) == 1 and mine[0][2:5] == ["100", "97", "3"] and mine[0][6] == "20.0 / 20.0 / 20.0"
    said = network_table(recorded.impairments)
    assert said.rows[0] == ["Mobile network", "to-phone", "loss=3%", "102", "4", "", ""]
