"""The report's own figures, each comparing the runs of one experiment. Built as `Figure`
objects, not through pyplot: no GUI backend, no global state."""

from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from orchestrator.report.model import Curve, ExperimentReport, RunReport, ordered_union
from spd.metric_names import ALIVE, ALIVE_LABEL, LOSS_PREFIX, TOTAL_LOSS, C

MAX_LEGEND_RUNS = 20
"""Beyond this many runs a legend hides the curves; the run table names them instead."""
MIN_LOSS = 1e-12
"""Floor of the log scale: an exactly zero loss stays on the plot."""


def plot_curve(ax: Axes, curve: Curve, colour: Any, label: str | None, evaluation: bool) -> None:
    """Markers on every point: a run of a few logged steps still shows its values, not an
    empty axis (a line needs two points). Evaluations: open circles on a dashed line."""
    ax.plot(
        curve.steps,
        np.maximum(curve.values, MIN_LOSS),
        color=colour,
        label=label,
        linewidth=1.0 if evaluation else 1.2,
        linestyle="--" if evaluation else "-",
        marker="o" if evaluation else ".",
        markersize=5 if evaluation else 3,
        markerfacecolor="none" if evaluation else colour,
    )


def loss_figure_title(experiment: ExperimentReport, runs: list[RunReport]) -> str:
    """Named after its run where it shows one, so a copied PNG still says whose losses it has."""
    whose = runs[0].name if len(runs) == 1 else f"{experiment.name} ({len(runs)} runs)"
    return f"{whose}: losses (unweighted; dots train, circles eval)"


def overlaid_loss_curves(experiment: ExperimentReport) -> Figure | None:
    """One panel per loss term, one line per run (same colour in every panel), log scale:
    training curves solid, evaluations dashed."""
    runs = [run for run in experiment.runs if run.loss_curves or run.eval_loss_curves]
    if not runs:
        return None
    terms = sorted(
        ordered_union(
            [*(run.loss_curves for run in runs), *(run.eval_loss_curves for run in runs)]
        ),
        key=lambda t: (t != TOTAL_LOSS, t),
    )
    n_cols = min(3, len(terms))
    n_rows = -(-len(terms) // n_cols)
    fig = Figure(figsize=(4.5 * n_cols, 3.2 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    colours = matplotlib.colormaps["tab20" if len(runs) > 10 else "tab10"]
    for ax, term in zip(axes.flat, terms):
        for i, run in enumerate(runs):
            colour = colours(i % colours.N)
            if term in run.loss_curves:
                plot_curve(ax, run.loss_curves[term], colour, run.short_name, evaluation=False)
            if term in run.eval_loss_curves:
                # Labelled only where there is no training curve: one legend entry per run.
                label = None if term in run.loss_curves else run.short_name
                plot_curve(ax, run.eval_loss_curves[term], colour, label, evaluation=True)
        ax.set_yscale("log")
        ax.set_title(term.removeprefix(LOSS_PREFIX), fontsize=10)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(terms) :]:
        ax.set_visible(False)
    if len(runs) <= MAX_LEGEND_RUNS:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(loss_figure_title(experiment, runs), fontsize=11)
    fig.tight_layout()
    return fig


def alive_against_c(experiment: ExperimentReport) -> Figure | None:
    """Per module, each completed run's components alive on the training distribution (summary
    `alive`; dark) inside a bar of its C (light)."""
    runs = experiment.with_results
    paths = experiment.module_paths
    if not runs or not paths:
        return None
    width = min(20.0, max(6.0, 2.5 + 0.45 * len(runs)))
    fig = Figure(figsize=(width, 2.4 * len(paths) + 0.8))
    axes = fig.subplots(len(paths), 1, squeeze=False)
    x = np.arange(len(runs))
    for ax, path in zip(axes[:, 0], paths):
        c = [run.modules.get(path, {}).get(C, np.nan) for run in runs]
        alive = [run.modules.get(path, {}).get(ALIVE, np.nan) for run in runs]
        ax.bar(x, c, color="#d0d7e2", label="C", width=0.7)
        ax.bar(x, alive, color="#2b6cb0", label=ALIVE_LABEL, width=0.45)
        ax.set_title(path, fontsize=10)
        ax.set_ylabel("components")
        ax.set_xticks(x, [run.short_name for run in runs], rotation=30, ha="right", fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{experiment.name}: components {ALIVE_LABEL}, against C", fontsize=11)
    fig.tight_layout()
    return fig
