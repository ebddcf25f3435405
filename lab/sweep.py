"""A grid of calls: every combination of the swept codecs and impairment values, each
repeated, run in parallel up to what the lab carries at once; one row per call.

    calllab sweep --number +79001234567 --codec opus,pcmu --leg mobile --loss 0,2,5,10 \
        --repeat 3 -o sweep.html

Axes (each a comma list; the grid is their product times the repeats):
- codecs (CODEC_AXES): each axis is one place_call keyword and the values it may take;
- impairment parameters (PARAMETERS): loss (%), burst (packets), delay (ms), jitter (ms),
  dup (%), rate (kbit/s), all on one leg, in one direction or both.
Repeat r of every point runs with seed `seed + r`: repeats differ from each other, a rerun
is the same packet for packet, and the points of one repeat share their random draws (with
random loss, a higher loss drops a superset of the packets a lower one drops), so what
differs between points is the parameter, not the luck of the draw.

A row is what one call measured, flat (CSV, JSON): the point (codecs, impairment), the
call (id, status), and per direction (to_phone, to_browser) what the network said it
dropped, what the capture shows on the wire (sent, lost, delay across the network party),
what the receiver saw (loss, jitter, E-model MOS) and PESQ beside its ceiling.

A capture records the whole lab, so a call that overlaps others holds their packets too:
rows read only the call's own streams (lab.analysis.recorded_call.own_streams).
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lab.config import BROWSER_CODECS, LabConfig
from lab.network.impairment import Impairment, ImpairmentError
from lab.network.legs import DIRECTIONS, LEGS, LegImpairment, plan
from lab.numbers import InvalidNumber, normalize_number
from lab.sip.codecs import LEG_CODECS

if TYPE_CHECKING:
    from lab.analysis.hops import NetworkHop
    from lab.analysis.model import CallModel, RtpStream
    from lab.batch import Row
    from lab.scenario import CallResult


class SweepError(ValueError):
    """A sweep that cannot run; the message names the option and what it accepts."""


@dataclass(frozen=True)
class CodecAxis:
    """A codec choice that can be swept: `--<option> a,b` becomes place_call(<keyword>=a)."""

    option: str  # the command-line option, without --
    keyword: str  # place_call's parameter; also the row's column
    choices: tuple[str, ...]
    help: str


#: Every codec a sweep can vary. A new codec option of place_call is one line here.
CODEC_AXES: tuple[CodecAxis, ...] = (
    CodecAxis("codec", "codec", BROWSER_CODECS, "browser leg (WebRTC) codecs"),
    CodecAxis("sip-codec", "sip_codec", tuple(c.lower() for c in LEG_CODECS["sip"]), "SIP leg codecs"),
    CodecAxis(
        "mobile-codec", "mobile_codec", tuple(c.lower() for c in LEG_CODECS["mobile"]), "mobile leg codecs"
    ),
)


@dataclass(frozen=True)
class Parameter:
    """An impairment parameter: its --impair name, the row's column (in `unit`) and its
    value there, read back from the Impairment the spec made."""

    name: str
    column: str
    unit: str
    value: Callable[[Impairment], float | None]


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("loss", "loss_pct", "%", lambda i: round(i.loss * 100, 6)),
    Parameter("burst", "burst", "packets", lambda i: i.burst),
    Parameter("delay", "delay_ms", "ms", lambda i: i.delay_ms),
    Parameter("jitter", "jitter_ms", "ms", lambda i: i.jitter_ms),
    Parameter("dup", "dup_pct", "%", lambda i: round(i.dup * 100, 6)),
    Parameter("rate", "rate_kbit", "kbit/s", lambda i: i.rate_kbit),
)
PARAMETER = {p.name: p for p in PARAMETERS}
#: Row column names of the two directions, in DIRECTIONS order.
SIDES = ("to_phone", "to_browser")
PESQ_DIRECTIONS = {"to_phone": "Browser -> Mobile phone", "to_browser": "Mobile phone -> Browser"}


@dataclass(frozen=True)
class Point:
    """One call of the grid."""

    index: int
    repeat: int
    codecs: tuple[tuple[str, str], ...]  # (CodecAxis.keyword, value)
    leg: str
    direction: str  # to-phone, to-browser or both
    impairment: Impairment  # with this repeat's seed

    @property
    def impairments(self) -> tuple[LegImpairment, ...]:
        """What place_call gets: nothing for a perfect network (its media goes direct)."""
        return plan(impair=[f"{self.leg}:{self.direction}:{self.impairment.spec()}"])

    def call_kwargs(self) -> dict[str, Any]:
        return {**dict(self.codecs), "impairments": self.impairments}


@dataclass(frozen=True)
class Sweep:
    """What to sweep, as the command line gives it (values as typed: `5`, `5%`, `80ms`)."""

    number: str
    leg: str = "mobile"
    direction: str = "both"
    codecs: tuple[tuple[str, tuple[str, ...]], ...] = ()  # CodecAxis.option -> values
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # Parameter.name -> values
    repeat: int = 1
    seed: int = 1
    duration: float = 5.0

    @property
    def parameter(self) -> Parameter | None:
        """The plots' x axis: the first parameter (in PARAMETERS order) with several values,
        else the first one given."""
        swept = [n for n, v in self.values if len(v) > 1] or [n for n, _ in self.values]
        return min((PARAMETER[n] for n in swept), key=PARAMETERS.index, default=None)

    @property
    def line_columns(self) -> list[str]:
        """The columns whose values make one line of a plot: the codecs, and any other
        parameter with several values."""
        x = self.parameter
        others = [PARAMETER[n].column for n, v in self.values if len(v) > 1 and PARAMETER[n] != x]
        return [_axis(o).keyword for o, _ in self.codecs] + others

    def points(self) -> list[Point]:
        """The grid, repeat by repeat (an interrupted sweep has whole repeats first);
        SweepError for anything that cannot run, before any call is placed."""
        try:
            normalize_number(self.number)
        except InvalidNumber as exc:
            raise SweepError(f"--number: {exc}") from None
        if self.leg not in LEGS:
            raise SweepError(f"--leg {self.leg!r}: one of {', '.join(LEGS)}")
        if self.direction not in (*DIRECTIONS, "both"):
            raise SweepError(f"--direction {self.direction!r}: one of {', '.join(DIRECTIONS)}, both")
        if self.repeat < 1:
            raise SweepError(f"--repeat {self.repeat}: 1 or more")
        if not self.duration > 0:
            raise SweepError(f"--duration {self.duration:g}: more than 0 s")
        codec_values = [[(_axis(o).keyword, _codec(o, v)) for v in values] for o, values in self.codecs]
        specs = [[_spec_item(name, value) for value in values] for name, values in self.values]
        points: list[Point] = []
        for repeat in range(self.repeat):
            for codecs in itertools.product(*codec_values):
                for items in itertools.product(*specs):
                    impairment = Impairment.parse(",".join([*items, f"seed={self.seed + repeat}"]))
                    points.append(Point(len(points), repeat, codecs, self.leg, self.direction, impairment))
        return points


def _axis(option: str) -> CodecAxis:
    found = next((a for a in CODEC_AXES if a.option == option), None)
    if found is None:
        raise SweepError(
            f"--{option}: not a codec axis; one of {', '.join('--' + a.option for a in CODEC_AXES)}"
        )
    return found


def _codec(option: str, value: str) -> str:
    axis = _axis(option)
    codec = value.strip().lower()
    if codec not in axis.choices:
        raise SweepError(f"--{option} {value!r}: one of {', '.join(axis.choices)}")
    return codec


def _spec_item(name: str, value: str) -> str:
    if name not in PARAMETER:
        raise SweepError(f"impairment parameter {name!r}: one of {', '.join(PARAMETER)}")
    item = f"{name}={value.strip()}"
    try:
        Impairment.parse(item)
    except ImpairmentError as exc:
        raise SweepError(f"--{name} {value.strip()!r}: {exc}") from None
    return item


def split(text: str) -> tuple[str, ...]:
    """A comma list as the options take it: `0,2,5,10`."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def default_parallel(cfg: LabConfig) -> int:
    """Calls at once unless asked: the lab's capacity, but no more than the machine's cores.
    Every call costs the gateway, the client and the relays CPU, and a saturated machine
    underruns the media and lowers the PESQ it measures (bench/sweep.py on 2 cores: 4 at
    once put an unimpaired call a median 0.15 below its ceiling, worst 1.06; 2 at once
    0.06, for 10 % fewer calls per minute)."""
    return max(1, min(cfg.calls_at_once, os.cpu_count() or 1))


# --- rows -------------------------------------------------------------------------------


def columns() -> list[str]:
    """Every row's columns, in order (the CSV header)."""
    per_side = [
        "dropped",
        "sent",
        "lost",
        "loss_pct",
        "jitter_ms",
        "delay_ms",
        "codec",
        "mos",
        "pesq",
        "ceiling",
    ]
    return [
        "index",
        "repeat",
        "seed",
        *(a.keyword for a in CODEC_AXES),
        "leg",
        "direction",
        "spec",
        *(p.column for p in PARAMETERS),
        "call_id",
        "status",
        "sip_code",
        "ok",
        "reason",
        *(f"{side}_{name}" for side in SIDES for name in per_side),
        "report",
    ]


def _point_columns(point: Point) -> Row:
    row: Row = dict.fromkeys(columns())
    row.update(
        index=point.index,
        repeat=point.repeat,
        seed=point.impairment.seed,
        leg=point.leg,
        direction=point.direction,
        spec=point.impairment.spec(),
    )
    row.update(dict(point.codecs))
    row.update({p.column: p.value(point.impairment) for p in PARAMETERS})
    return row


def _ends(leg: str, side: str) -> tuple[str, str, str]:
    """Sender, network and receiver of `leg`'s packets in direction `side`."""
    cfg = LabConfig()
    browser_side, phone_side = {
        "browser": (cfg.browser, cfg.gateway),
        "sip": (cfg.gateway, cfg.pstn),
        "mobile": (cfg.pstn, cfg.phone),
    }[leg]
    sender, receiver = (browser_side, phone_side) if side == "to_phone" else (phone_side, browser_side)
    return sender.name, cfg.networks[leg].name, receiver.name


def _receiving(streams: Sequence[RtpStream], leg: str, side: str) -> RtpStream | None:
    """The stream the receiver of `leg` got in direction `side`: from its network when the
    leg was impaired, else straight from the sender."""
    sender, network, receiver = _ends(leg, side)
    found = [s for s in streams if s.dst_party == receiver and s.src_party in (sender, network)]
    return max(found, key=lambda s: s.stats.packets, default=None)


def _hop(hops: Sequence[NetworkHop], leg: str, side: str) -> NetworkHop | None:
    sender, network, receiver = _ends(leg, side)
    return next(
        (h for h in hops if (h.src_party, h.network, h.dst_party) == (sender, network, receiver)), None
    )


def row_of(point: Point, result: CallResult) -> Row:
    """What one call measured, as a flat row (see the module's docstring)."""
    from lab.analysis.recorded_call import own_streams

    row = _point_columns(point)
    row.update(
        call_id=result.call_id,
        status=result.final_status,
        sip_code=result.sip_code,
        ok=result.ok,
        reason=result.reason,
        report=result.report,
    )
    said = {r["direction"].replace("-", "_"): r for r in result.impairments if r.get("leg") == point.leg}
    for side in SIDES:
        if side in said:
            # Its RTP packets: the network's own `dropped` counts RTCP too.
            seqs = said[side].get("dropped_seqs")
            row[f"{side}_dropped"] = len(seqs) if seqs is not None else said[side].get("dropped")
    if result.ok and (missed := _not_impaired(result.impairments)):
        row.update(ok=False, reason=missed)
    model: CallModel | None = result.model
    if model is None:
        if result.ok:
            row["reason"] = result.capture_error or "no capture to measure"
        return row
    browser_pt = (result.webrtc_codec or {}).get("pt")
    streams = own_streams(model, result.call_id, browser_pt)
    ssrcs = {s.ssrc for s in streams}
    hops = [h for h in model.hops if h.ssrc in ssrcs]
    for side in SIDES:
        stream = _receiving(streams, point.leg, side)
        if stream is not None:
            row[f"{side}_loss_pct"] = round(stream.stats.lost_pct, 3)
            row[f"{side}_jitter_ms"] = round(stream.stats.mean_jitter_ms, 3)
            row[f"{side}_codec"] = stream.codec
            row[f"{side}_mos"] = stream.quality.mos
        hop = _hop(hops, point.leg, side)
        if hop is not None:
            row[f"{side}_sent"] = hop.sent
            row[f"{side}_lost"] = hop.lost
            row[f"{side}_delay_ms"] = round(hop.delay_ms, 3)
        pesq = next((p for p in model.pesq if p.direction == PESQ_DIRECTIONS[side]), None)
        if pesq is not None:
            row[f"{side}_pesq"] = pesq.mos_lqo
            row[f"{side}_ceiling"] = pesq.ceiling
    return row


def _not_impaired(said: Sequence[Mapping[str, Any]]) -> str:
    """Why a call's media did not cross the network it asked for ("" when it did): such a
    call measured a perfect network, and its row must not count as the impaired one."""
    for r in said:
        if r.get("spec") and (r.get("error") or not r.get("packets")):
            why = r.get("error") or "it carried no packets: the media took the direct path"
            return f"{r['leg']} {r['direction']}: {r.get('network')}: {why}"
    return ""


def failed_row(point: Point, error: BaseException) -> Row:
    """The row of a call that raised instead of finishing: the point and why."""
    row = _point_columns(point)
    row.update(status="ERROR", ok=False, reason=f"{type(error).__name__}: {error}")
    return row


class Results:
    """The rows so far, each written to the CSV the moment its call finishes, so an
    interrupted sweep keeps every finished row."""

    def __init__(self, csv_path: Path | None = None) -> None:
        self.rows: list[Row] = []
        self.csv_path = csv_path
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = csv_path.open("w", newline="")
            self._writer = csv.DictWriter(self._file, columns())
            self._writer.writeheader()
            self._file.flush()

    def add(self, row: Row) -> None:
        self.rows.append(row)
        if self._writer is not None and self._file is not None:
            self._writer.writerow(row)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def ordered(self) -> list[Row]:
        return sorted(self.rows, key=lambda r: int(r["index"]))

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.ordered if not r["ok"]]

    def json(self) -> str:
        return json.dumps(self.ordered, indent=2)


def read_csv(path: Path) -> list[Row]:
    """A sweep's CSV back as rows (numbers as numbers, empty cells as None)."""

    def value(text: str) -> Any:
        if text == "":
            return None
        if text in ("True", "False"):
            return text == "True"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with path.open(newline="") as f:
        return [{k: value(v) for k, v in r.items()} for r in csv.DictReader(f)]


# --- running ------------------------------------------------------------------------------

CallFunction = Callable[[Point], Awaitable["CallResult"]]


async def run(
    points: Sequence[Point],
    call: CallFunction,
    results: Results,
    concurrency: int,
    on_row: Callable[[Row], None] | None = None,
) -> Results:
    """Every point's call, at most `concurrency` at once, each row added the moment it is
    done. A call that raises is a failed row; cancelling (Ctrl-C) ends the calls in flight
    (their sessions hang up) and keeps the rows already added."""

    async def one(point: Point) -> None:
        try:
            row = row_of(point, await call(point))
        except Exception as exc:  # one failing call must not end the sweep
            row = failed_row(point, exc)
        results.add(row)
        if on_row is not None:
            on_row(row)

    from lab.batch import run_bounded  # the command line's parser reads this module's axes: kept light

    await run_bounded([functools.partial(one, p) for p in points], concurrency)
    return results


def lab_call(cfg: LabConfig, sweep: Sweep, analysis: Executor) -> CallFunction:
    """The real call of a point: placed through the lab, analysed in `analysis`."""

    async def call(point: Point) -> CallResult:
        from lab.batch import analysed_call

        return await analysed_call(cfg, analysis, sweep.number, sweep.duration, **point.call_kwargs())

    return call


async def run_in_lab(
    sweep: Sweep,
    points: Sequence[Point],
    results: Results,
    concurrency: int,
    on_row: Callable[[Row], None] | None = None,
) -> Results:
    """The sweep on the running lab (`calllab up`'s), or on one started for it and stopped
    after, as `calllab call` does."""
    from lab.batch import a_lab, analysis_pool

    with analysis_pool() as analysis:
        async with a_lab() as cfg:
            return await run(points, lab_call(cfg, sweep, analysis), results, concurrency, on_row)


def write_report(sweep: Sweep, rows: Sequence[Row], path: Path, total: int) -> Path:
    """The sweep's HTML report (plots and every call) at `path`."""
    from lab.report import render_sweep

    x = sweep.parameter
    codecs = ", ".join(f"--{o} {','.join(v)}" for o, v in sweep.codecs)
    values = ", ".join(f"--{n} {','.join(v)}" for n, v in sweep.values)
    notes = [
        f"Calls to {sweep.number}: {codecs or 'default codecs'}; on the {sweep.leg} leg ({sweep.direction}): "
        f"{values or 'no impairment'}; {sweep.repeat} repeats "
        f"(seeds {sweep.seed}..{sweep.seed + sweep.repeat - 1}), {sweep.duration:g} s of talk each.",
        *summary(rows, total),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_sweep(
        sorted(rows, key=lambda r: int(r["index"])),
        f"Sweep: {values or codecs or 'calls'}",
        x.column if x else "",
        f"{x.name} ({x.unit})" if x else "no parameter swept",
        sweep.line_columns,
        notes,
    )
    path.write_text(text)
    return path


def summary(rows: Sequence[Row], total: int) -> list[str]:
    """What a sweep did: counts, and each failed or missing call with why."""
    done = sorted(rows, key=lambda r: int(r["index"]))
    failed = [r for r in done if not r["ok"]]
    lines = [f"{len(done)} of {total} calls done, {len(failed)} failed"]
    lines += [f"  #{r['index']} {_point_text(r)}: {r['status']} {r['reason']}".rstrip() for r in failed]
    if len(done) < total:
        lines.append(f"  {total - len(done)} calls not finished (interrupted: those in flight were hung up)")
    return lines


def _point_text(row: Mapping[str, Any]) -> str:
    codecs = " ".join(f"{a.keyword}={row[a.keyword]}" for a in CODEC_AXES if row.get(a.keyword))
    return f"{codecs} {row['leg']}:{row['direction']}:{row['spec']} (call {row['call_id'] or '-'})".strip()
