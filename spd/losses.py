"""The SPD losses (arXiv 2506.20790, section 2) and their weighted sum.

Each reconstruction loss draws its own stochastic masks. Output distances: `mse` is the mean of
squared differences over all elements; `kl` is KL(target || masked) over the last (vocab) axis,
averaged over every other position.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from spd.component_model import CausalImportances, ComponentModel, ModuleMask
from spd.components import target_weight
from spd.config import Config, ImportanceMinimalityLoss
from spd.masks import MaskNoise, draw_mask_noise, mask_from_noise
from spd.metric_names import (
    CI_MASKED_RECON,
    FAITHFULNESS,
    IMPORTANCE_MINIMALITY,
    STOCHASTIC_RECON,
    STOCHASTIC_RECON_LAYERWISE,
    TOTAL,
    loss_name,
)
from spd.step_batch import StepBatch, weighted_row_mean


def faithfulness_loss(model: ComponentModel) -> Tensor:
    """Σ over decomposed modules of ‖W_target - Σ_c UV‖², divided by their number of weights."""
    squared, n_params = 0.0, 0
    for path in model.module_paths:
        w_target = target_weight(model.target.get_submodule(path))
        diff = w_target - model.components_of(path).weight
        squared = squared + (diff**2).sum()
        n_params += diff.numel()
    return squared / n_params  # type: ignore[return-value]


def annealed_p(loss: ImportanceMinimalityLoss, step: int, total_steps: int) -> float:
    """p of the importance-minimality loss at `step`: pnorm, annealed linearly to final p."""
    final_p = loss.p_anneal_final_p
    if final_p is None or loss.p_anneal_start_frac >= 1:
        return loss.pnorm
    frac = step / total_steps
    if frac < loss.p_anneal_start_frac:
        return loss.pnorm
    if frac >= loss.p_anneal_end_frac:
        return final_p
    progress = (frac - loss.p_anneal_start_frac) / (loss.p_anneal_end_frac - loss.p_anneal_start_frac)
    return loss.pnorm + (final_p - loss.pnorm) * progress


def importance_minimality_loss(
    ci_upper: dict[str, Tensor], p: float | Tensor, eps: float, row_weights: Tensor | None = None
) -> Tensor:
    """Σ_modules mean over batch (and positions) of Σ_c (ci + eps)^p."""
    total = 0.0
    for ci in ci_upper.values():
        total = total + weighted_row_mean((ci + eps).pow(p).sum(-1), row_weights)
    return total  # type: ignore[return-value]


def output_distance(
    out: Tensor, target_out: Tensor, kind: str, row_weights: Tensor | None = None
) -> Tensor:
    if kind == "mse":
        return weighted_row_mean((out - target_out).square(), row_weights)
    log_p = F.log_softmax(target_out, dim=-1)
    log_q = F.log_softmax(out, dim=-1)
    return weighted_row_mean((log_p.exp() * (log_p - log_q)).sum(-1), row_weights)


def stochastic_masks(
    ci: CausalImportances, noise: MaskNoise, sampling: str
) -> dict[str, ModuleMask]:
    return {
        path: ModuleMask(
            mask=mask_from_noise(ci.lower[path], r, sampling),
            delta_mask=None if noise.delta is None else noise.delta[path],
        )
        for path, r in noise.component.items()
    }


@dataclass
class LossNoise:
    """The mask draws of one step's stochastic losses, one MaskNoise per mask sample."""

    stochastic_recon: list[MaskNoise]
    stochastic_recon_layerwise: list[MaskNoise]


def draw_loss_noise(
    model: ComponentModel, data: StepBatch, config: Config, generator: torch.Generator
) -> LossNoise:
    """Every draw the configured stochastic losses will use, in a fixed order. A part of a step
    (data parallel) draws those of the whole step and keeps its rows: the same stream, and the
    same masks, as one process computing the whole step."""
    shapes = {path: model.ci_shape(path, x) for path, x in data.inputs.items()}
    if data.part is not None:
        shapes = {path: torch.Size([data.n_step_rows, *s[1:]]) for path, s in shapes.items()}

    def draw() -> MaskNoise:
        noise = draw_mask_noise(shapes, model.use_delta_component, generator)
        return noise if data.part is None else noise.rows(data.part)

    def samples(enabled: bool) -> list[MaskNoise]:
        n = config.n_mask_samples if enabled else 0
        return [draw() for _ in range(n)]

    return LossNoise(
        stochastic_recon=samples(config.losses.stochastic_recon is not None),
        stochastic_recon_layerwise=samples(config.losses.stochastic_recon_layerwise is not None),
    )


def masked_distance(
    model: ComponentModel,
    data: StepBatch,
    masks: dict[str, ModuleMask],
    config: Config,
    ci: CausalImportances | None = None,
) -> Tensor:
    """D(model with `masks`, target); with `ci`, the first masked module reuses its inner acts."""
    out = model(data.batch, masks=masks, target_inner_acts=None if ci is None else ci.inner_acts)
    return output_distance(out, data.target_out, config.output_loss_type, data.row_weights)


def stochastic_recon_loss(
    model: ComponentModel, data: StepBatch, ci: CausalImportances, config: Config,
    noise: list[MaskNoise],
) -> Tensor:
    """Mean over mask samples of D(model with every module masked at once, target)."""
    total = 0.0
    for sample in noise:
        masks = stochastic_masks(ci, sample, config.sampling)
        total = total + masked_distance(model, data, masks, config, ci)
    return total / len(noise)  # type: ignore[return-value]


def stochastic_recon_layerwise_loss(
    model: ComponentModel, data: StepBatch, ci: CausalImportances, config: Config,
    noise: list[MaskNoise],
) -> Tensor:
    """Mean over mask samples and modules of D(model with only that module masked, target)."""
    total = 0.0
    for sample in noise:
        for path, module_mask in stochastic_masks(ci, sample, config.sampling).items():
            total = total + masked_distance(model, data, {path: module_mask}, config, ci)
    return total / (len(noise) * len(model.module_paths))  # type: ignore[return-value]


def ci_masked_recon_loss(
    model: ComponentModel, data: StepBatch, ci: CausalImportances, config: Config
) -> Tensor:
    """D(model with every module masked by its CI, target)."""
    masks = {path: ModuleMask(mask=ci.lower[path]) for path in model.module_paths}
    return masked_distance(model, data, masks, config, ci)


def compute_losses(
    model: ComponentModel,
    data: StepBatch,
    ci: CausalImportances,
    config: Config,
    p: float | Tensor,
    noise: LossNoise,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted total loss and every term's unweighted value (keys `loss/<term>`), detached.

    `p` is the importance-minimality exponent of this step (`annealed_p`), `noise` the step's
    mask draws (`draw_loss_noise`). Values stay tensors so that a step never waits on the
    device; callers convert when logging.
    """
    losses = config.losses
    imp = losses.importance_minimality
    terms: dict[str, tuple[float, Tensor]] = {
        IMPORTANCE_MINIMALITY: (
            imp.coeff, importance_minimality_loss(ci.upper, p, imp.eps, data.row_weights)
        )
    }
    with model.weight_deltas():
        if losses.faithfulness is not None:
            terms[FAITHFULNESS] = (losses.faithfulness.coeff, faithfulness_loss(model))
        if losses.stochastic_recon is not None:
            terms[STOCHASTIC_RECON] = (
                losses.stochastic_recon.coeff,
                stochastic_recon_loss(model, data, ci, config, noise.stochastic_recon),
            )
        if losses.stochastic_recon_layerwise is not None:
            terms[STOCHASTIC_RECON_LAYERWISE] = (
                losses.stochastic_recon_layerwise.coeff,
                stochastic_recon_layerwise_loss(
                    model, data, ci, config, noise.stochastic_recon_layerwise
                ),
            )
        if losses.ci_masked_recon is not None:
            terms[CI_MASKED_RECON] = (
                losses.ci_masked_recon.coeff, ci_masked_recon_loss(model, data, ci, config)
            )
    total = sum(coeff * value for coeff, value in terms.values())
    logged = {loss_name(name): value.detach() for name, (_, value) in terms.items()}
    logged[loss_name(TOTAL)] = total.detach()  # type: ignore[union-attr]
    return total, logged  # type: ignore[return-value]
