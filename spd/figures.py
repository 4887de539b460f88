"""PNG figures of a run: CI per input feature, component weight norms, loss curves.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so they need no GUI
backend and leave no global pyplot state behind; importing this module configures nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spd.component_model import ComponentModel
from spd.metric_names import LOSS_PREFIX, PROBE_ACTIVE_LABEL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PROBE_ACTIVE_MIN_CI = 0.01
"""A component is active on the probes (metric_names.PROBE_ACTIVE_LABEL) when its CI exceeds this
on one of them."""
MAX_PANELS_PER_ROW = 4
"""A model with many decomposed modules (an LM) gets rows of panels, not one very wide row."""


def panel_grid(n_panels: int, panel_width: float, panel_height: float) -> tuple[Figure, list[Axes]]:
    """A figure with one panel per module, wrapped into rows; unused grid cells are hidden."""
    from matplotlib.figure import Figure  # ~0.9 s: paid when a run draws, not before its first step

    n_cols = min(n_panels, MAX_PANELS_PER_ROW)
    n_rows = -(-n_panels // n_cols)
    fig = Figure(figsize=(panel_width * n_cols, panel_height * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def ci_per_feature_figure(probe_ci: dict[str, np.ndarray]) -> Figure:
    """One heatmap per module: CI of each component (columns, sorted by their top feature) when
    only feature j (row) is active. Only the components active on these probes are shown (CI >
    PROBE_ACTIVE_MIN_CI on some row); the title counts them. That count is not `alive` (the
    components that fired on the training distribution), which can be larger."""
    fig, axes = panel_grid(len(probe_ci), 4, 3.5)
    for ax, (path, ci) in zip(axes, probe_ci.items()):
        used = np.flatnonzero(ci.max(axis=0) > PROBE_ACTIVE_MIN_CI)
        order = used[np.argsort(ci[:, used].argmax(axis=0), kind="stable")]
        image = ax.imshow(ci[:, order] if len(order) else ci[:, :1] * 0, vmin=0, vmax=1,
                          cmap="viridis", aspect="auto")
        title = f"{path}\n{len(order)} of {ci.shape[1]} components {PROBE_ACTIVE_LABEL}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("component (sorted)")
        ax.set_ylabel("input feature")
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def component_norms_figure(model: ComponentModel) -> Figure:
    """‖U_c‖·‖V_c‖ of each subcomponent (the Frobenius norm of the rank-one matrix), sorted."""
    paths = model.module_paths
    fig, axes = panel_grid(len(paths), 4, 3)
    for ax, path in zip(axes, paths):
        comp = model.components_of(path)
        norms = (comp.V.detach().norm(dim=0) * comp.U.detach().norm(dim=1)).float().cpu().numpy()
        ax.bar(np.arange(len(norms)), np.sort(norms)[::-1])
        ax.set_title(f"{path} (C={len(norms)})", fontsize=9)
        ax.set_xlabel("component (sorted)")
        ax.set_ylabel("‖U_c‖·‖V_c‖")
    fig.tight_layout()
    return fig


def loss_curves_figure(metrics_path: Path) -> Figure:
    """Every `loss/*` series of metrics.jsonl against the step, log scale."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for line in metrics_path.read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key.startswith(LOSS_PREFIX):
                steps, values = series.setdefault(key, ([], []))
                steps.append(record["step"])
                values.append(value)
    fig, (ax,) = panel_grid(1, 6, 4)
    for key, (steps, values) in sorted(series.items()):
        ax.plot(steps, np.maximum(values, 1e-12), label=key.removeprefix(LOSS_PREFIX))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (unweighted)")
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    # Imported here, not with the module: pyplot costs ~0.5 s, and the orchestrator's command
    # line imports this module without drawing anything.
    import matplotlib.pyplot as plt

    plt.close(fig)  # a user figure made through pyplot; a no-op for the figures above
    tmp.replace(path)
