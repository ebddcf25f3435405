"""What the notebooks need beyond widgets: a lab to talk to, and tables to show."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from IPython import get_ipython
from IPython.display import HTML, IFrame
from matplotlib.figure import Figure

from lab.analysis.call_steps import CallStep
from lab.analysis.columns import BRIEF, Table, hop_table, network_table, stream_table
from lab.analysis.model import CallModel
from lab.config import NARROWBAND, WIDEBAND, LabConfig
from lab.gateway.page import url as page_url
from lab.plots import png
from lab.report import html_table
from lab.stack import LabError, Stack, chosen_config, requested_instance, running_config

_kernel_stack: Stack | None = None


def show_figures_inline() -> None:
    """lab.plots returns bare Figures (no pyplot state): teach IPython to show them."""
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, png)


show_figures_inline()


async def start_lab(wideband: bool = False) -> LabConfig:
    """The lab `calllab up` runs, if any; else one started inside this kernel (its processes
    die with the kernel, also on a restart, and stop_lab() stops them). `wideband`: its
    audio at 16 kHz (LabConfig.audio_rate); a lab already up in the other band is an error."""
    global _kernel_stack
    rate = WIDEBAND if wideband else NARROWBAND
    cfg = running_config() or (_kernel_stack.cfg if _kernel_stack is not None else None)
    if cfg is not None and cfg.audio_rate != rate:
        raise LabError(
            f"the lab is up at {cfg.audio_rate} Hz, not {rate} Hz: stop it first "
            "(`calllab down`, or lab.notebook.stop_lab() for this kernel's)"
        )
    if cfg is not None:
        return cfg
    cfg = dataclasses.replace(chosen_config(), audio_rate=rate)
    _kernel_stack = await Stack(cfg, first_free=requested_instance() is None).start()
    return _kernel_stack.cfg


def stop_lab() -> None:
    global _kernel_stack
    if _kernel_stack is not None:
        _kernel_stack.stop()
        _kernel_stack = None


def phone_page(cfg: LabConfig, width: int = 760, height: int = 720) -> IFrame:
    """The lab's Phone page, this browser's own WebRTC on the lab, in the notebook (it may use
    the microphone: the page is another origin than Jupyter's)."""
    return IFrame(page_url(cfg), width, height, extras=['allow="microphone; autoplay"'])


def table(header: list[str], rows: list[list[object]]) -> HTML:
    """Any table, e.g. one notebook's comparison of several calls."""
    return HTML(html_table(Table(header, [[str(c) for c in r] for r in rows])))


def steps_table(steps: list[CallStep]) -> HTML:
    return table(
        ["step", "the product page says", "on this call's ladder", "time"],
        [[s.number, s.text, s.shown_as, f"{s.t:+.3f} s" if s.t is not None else ""] for s in steps],
    )


def streams_table(
    calls: CallModel | Mapping[str, CallModel], keys: Sequence[str] = BRIEF, by: str = "call"
) -> HTML:
    """The RTP streams of a call, or of several calls in one table (a first column `by` names
    each); `keys` from lab.analysis.columns.STREAM_COLUMNS."""
    if isinstance(calls, CallModel):
        return HTML(html_table(stream_table(calls.streams, keys)))
    empty = stream_table((), keys)
    rows = [[name, *row] for name, model in calls.items() for row in stream_table(model.streams, keys).rows]
    return HTML(html_table(Table([by, *empty.header], rows, frozenset({0} | {i + 1 for i in empty.left}))))


def hops_table(model: CallModel) -> HTML:
    """Each stream that crossed a network party: sent, delivered, lost, delay on the wire."""
    return HTML(html_table(hop_table(model.hops)))


def networks_table(said: Sequence[Mapping[str, Any]]) -> HTML:
    """What each network party said it did to a call (CallResult.impairments)."""
    return HTML(html_table(network_table(said)))
