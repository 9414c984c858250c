"""The dataset card's figures, drawn with matplotlib's Agg canvas from the summary frame.

Each figure has one panel per (problem, GPU). The PNGs carry no software or date metadata, so
the same rows give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SPEEDUP_PNG = "figures/speedup_per_stage.png"
BANDWIDTH_PNG = "figures/bandwidth_vs_roofline.png"

_SPEEDUPS = (
    ("speedup_vs_current", "vs current code"),
    ("speedup_vs_eager", "vs PyTorch eager"),
    ("speedup_vs_compile", "vs torch.compile"),
)


def _panels(frame: pd.DataFrame) -> tuple[Figure, Iterator[tuple[Axes, str, pd.DataFrame]]]:
    groups = list(frame.groupby(["problem", "gpu"], sort=True))
    ncols = min(len(groups), 3)
    nrows = math.ceil(len(groups) / ncols)
    figure = Figure(figsize=(5.0 * ncols, 3.8 * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    panels = (
        (ax, f"{problem} on {gpu}", group.sort_values("stage_number"))
        for ax, ((problem, gpu), group) in zip(axes, groups)
    )
    return figure, panels


def _stage_slots(frame: pd.DataFrame) -> dict[int, tuple[int, str]]:
    """Every stage in the frame, mapped to its x slot and tick label, so all panels share one axis."""
    stages = frame[["stage_number", "stage"]].drop_duplicates().sort_values("stage_number")
    return {int(n): (slot, f"{n}. {key}") for slot, (n, key) in enumerate(stages.itertuples(index=False))}


def _stage_axis(ax: Axes, slots: dict[int, tuple[int, str]], group: pd.DataFrame, width: float,
                series: int) -> list[float]:
    """Set the shared stage ticks on `ax`; return the x position of the first bar of each row."""
    ordered = sorted(slots.values())
    ax.set_xticks([slot + width * (series - 1) / 2 for slot, _ in ordered])
    ax.set_xticklabels([label for _, label in ordered], rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(ordered) - 0.5 + width * (series - 1))
    return [float(slots[int(n)][0]) for n in group["stage_number"]]


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})


def plot_speedups(frame: pd.DataFrame, path: Path) -> None:
    """Bars of the solution's speedup per stage against each baseline, one panel per problem."""
    figure, panels = _panels(frame)
    slots = _stage_slots(frame)
    width = 0.27
    for ax, title, group in panels:
        positions = _stage_axis(ax, slots, group, width, len(_SPEEDUPS))
        for i, (column, label) in enumerate(_SPEEDUPS):
            ax.bar([p + i * width for p in positions], group[column], width, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("speedup of the solution (x)")
        ax.legend(fontsize=7)
    figure.suptitle("Speedup of each stage's reference solution")
    _save(figure, path)


def plot_bandwidth(frame: pd.DataFrame, path: Path) -> None:
    """Achieved GB/s of the current code and the solution per stage, against the problem's roofline."""
    figure, panels = _panels(frame)
    slots = _stage_slots(frame)
    width = 0.4
    for ax, title, group in panels:
        positions = _stage_axis(ax, slots, group, width, 2)
        ax.bar(positions, group["current_gbps"], width, label="current code")
        ax.bar([p + width for p in positions], group["solution_gbps"], width, label="solution")
        ax.axhline(group["roofline_gbps"].median(), color="black", linewidth=1.2, label="roofline (problem's ceiling)")
        ax.axhline(group["eager_gbps"].median(), color="grey", linestyle=":", label="PyTorch eager")
        ax.axhline(group["compile_gbps"].median(), color="grey", linestyle="--", label="torch.compile")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("achieved bandwidth (GB/s)")
        ax.legend(fontsize=7)
    figure.suptitle("Achieved bandwidth against each problem's measured roofline")
    _save(figure, path)
