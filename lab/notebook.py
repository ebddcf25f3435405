"""What the notebooks need beyond widgets: a lab to talk to, and tables to show."""

from __future__ import annotations

import html

from IPython import get_ipython
from IPython.display import HTML
from matplotlib.figure import Figure

from lab.analysis.model import CallModel
from lab.analysis.seed import SeedStep
from lab.config import LabConfig
from lab.plots import png
from lab.stack import Stack, running_config

_kernel_stack: Stack | None = None


def show_figures_inline() -> None:
    """lab.plots returns bare Figures (no pyplot state): teach IPython to show them."""
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, png)


show_figures_inline()


async def start_lab() -> LabConfig:
    """The lab `calllab up` runs, if any; else one started inside this kernel (its processes
    die with the kernel, also on a restart, and stop_lab() stops them)."""
    global _kernel_stack
    cfg = running_config()
    if cfg is not None:
        return cfg
    if _kernel_stack is None:
        _kernel_stack = await Stack().start()
    return _kernel_stack.cfg


def stop_lab() -> None:
    global _kernel_stack
    if _kernel_stack is not None:
        _kernel_stack.stop()
        _kernel_stack = None


def table(header: list[str], rows: list[list[object]]) -> HTML:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return HTML(f"<table><tr>{head}</tr>{body}</table>")


def steps_table(steps: list[SeedStep]) -> HTML:
    return table(
        ["step", "the seed says", "on this call's ladder", "time"],
        [[s.number, s.text, s.shown_as, f"{s.t:+.3f} s" if s.t is not None else ""] for s in steps],
    )


def streams_table(model: CallModel) -> HTML:
    return table(
        ["stream", "packets", "lost", "mean jitter ms", "max jitter ms", "R", "MOS"],
        [
            [
                s.label,
                s.stats.packets,
                f"{s.stats.lost} ({s.stats.lost_pct:.1f}%)",
                f"{s.stats.mean_jitter_ms:.3f}",
                f"{s.stats.max_jitter_ms:.3f}",
                s.quality.r_factor,
                s.quality.mos,
            ]
            for s in model.streams
        ],
    )
