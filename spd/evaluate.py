"""Evaluation of a decomposition: losses on fresh batches, CI sparsity, alive components, and
(for toy models) the CI pattern against the known solution and the paper's MMCS/ML2R.

Metric names are those of spd.metric_names; the run summary, the orchestrator's objectives and the
reports all use them.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spd.component_model import ComponentModel
from spd.components import target_weight
from spd.config import Config
from spd.losses import annealed_p, compute_losses, draw_loss_noise
from spd.metric_names import (
    ALIVE,
    CI_L0,
    ML2R,
    MMCS,
    TARGET_CI_ERROR,
    TARGET_CI_ERROR_TOL_0_2,
    C,
    metric_name,
    with_totals,
)
from spd.metrics.alive_components import AliveComponentsTracker
from spd.metrics.target_ci import target_ci_errors
from spd.metrics.weight_match import mmcs_ml2r
from spd.step_batch import run_target, weighted_row_mean
from spd.tasks import Task

EVAL_SEED_OFFSET = 1_000_003
"""Eval batches come from their own generator, so evaluating never perturbs training."""


@dataclass
class Evaluation:
    metrics: dict[str, float]
    probe_ci: dict[str, np.ndarray]
    """CI on the feature probe, (n_features, C) per module; empty when the task has no probe."""


def load_callable(spec: str) -> Callable[..., Any]:
    """'package.module:function' -> the function."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"{spec!r} is not of the form 'module:function'")
    return getattr(importlib.import_module(module_name), attr)


@torch.no_grad()
def probe_causal_importances(model: ComponentModel, probe: Tensor) -> dict[str, np.ndarray]:
    _, inputs = model.forward_caching_inputs(probe)
    ci = model.causal_importances(inputs).lower
    return {path: value.float().cpu().numpy() for path, value in ci.items()}


@torch.no_grad()
def evaluate(
    model: ComponentModel,
    task: Task,
    config: Config,
    tracker: AliveComponentsTracker,
    step: int,
    device: torch.device,
) -> Evaluation:
    generator = torch.Generator(device=device).manual_seed(config.seed + EVAL_SEED_OFFSET)
    sums: dict[str, float] = {}
    l0: dict[str, float] = {path: 0.0 for path in model.module_paths}
    for _ in range(config.n_eval_steps):
        batch = (task.sample_eval_batch or task.sample_batch)(config.eval_batch, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.autocast_bf16):
            data = run_target(model, batch, task.independent_rows)
            noise = draw_loss_noise(model, data, config, generator)
            ci = model.causal_importances(data.inputs, data.nonzero_rows)
            p = annealed_p(config.losses.importance_minimality, step, config.steps)
            _, terms = compute_losses(model, data, ci, config, p, noise)
            if task.eval_metrics is not None:
                terms |= task.eval_metrics(model, data.batch, data.target_out, ci, config, generator)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value)
        for path, values in ci.lower.items():
            active = (values > config.ci_alive_threshold).float().sum(-1)
            l0[path] += float(weighted_row_mean(active, data.row_weights))
    metrics = {name: value / config.n_eval_steps for name, value in sums.items()}
    metrics |= with_totals(CI_L0, {p: v / config.n_eval_steps for p, v in l0.items()})
    metrics |= with_totals(ALIVE, {p: float(n) for p, n in tracker.n_alive().items()})
    metrics |= with_totals(C, {p: float(c) for p, c in model.module_to_c.items()})
    for path in model.module_paths:
        components = model.components_of(path)
        weight = target_weight(model.target.get_submodule(path)).float()
        alive = tracker.alive_mask(path)
        mmcs, ml2r = mmcs_ml2r(weight, components.V.float(), components.U.float(), alive)
        metrics[metric_name(MMCS, path)], metrics[metric_name(ML2R, path)] = mmcs, ml2r

    probe_ci: dict[str, np.ndarray] = {}
    if task.feature_probe is not None:
        probe_ci = probe_causal_importances(model, task.feature_probe)
        if config.target_ci_patterns is not None:
            for tol, name in ((0.1, TARGET_CI_ERROR), (0.2, TARGET_CI_ERROR_TOL_0_2)):
                errors = target_ci_errors(probe_ci, config.target_ci_patterns, tol)
                metrics |= with_totals(name, {p: float(e) for p, e in errors.items()})
    for spec in config.user_metrics:
        metrics |= {k: float(v) for k, v in load_callable(spec)(model=model, task=task, config=config).items()}
    return Evaluation(metrics=metrics, probe_ci=probe_ci)
