"""Language-model eval metrics: how well the decomposed model predicts text, under four masks.

For the target and for the model with every decomposed module replaced by its components masked
- `ci_masked`: by the causal importances,
- `stochastic_masked`: by a mask sample between CI and 1 (with the delta component when used),
- `unmasked`: by all ones (every component on),
- `zero_masked`: by all zeros (every component off),
this logs `ce/<variant>` (next-token cross-entropy on the batch), `kl/<variant>` (KL of the
target's next-token distribution to the variant's) and `ce_unrecovered/<variant>`: the share of
the CE gap between zero-masking and the target that the variant leaves (0 is as good as the
target, 1 as bad as ablating every module).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from spd.component_model import CausalImportances, ComponentModel, ModuleMask
from spd.config import Config
from spd.losses import output_distance, stochastic_masks
from spd.masks import draw_mask_noise
from spd.metric_names import CE, CE_UNRECOVERED, KL, metric_name


def next_token_ce(logits: Tensor, tokens: Tensor) -> Tensor:
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten())


def variant_masks(
    model: ComponentModel, ci: CausalImportances, config: Config, generator: torch.Generator
) -> dict[str, dict[str, ModuleMask]]:
    paths = model.module_paths
    shapes = {p: ci.lower[p].shape for p in paths}
    noise = draw_mask_noise(shapes, model.use_delta_component, generator)
    return {
        "ci_masked": {p: ModuleMask(mask=ci.lower[p]) for p in paths},
        "stochastic_masked": stochastic_masks(ci, noise, config.sampling),
        "unmasked": {p: ModuleMask(mask=torch.ones_like(ci.lower[p])) for p in paths},
        "zero_masked": {p: ModuleMask(mask=torch.zeros_like(ci.lower[p])) for p in paths},
    }


@torch.no_grad()
def lm_eval_metrics(
    model: ComponentModel,
    batch: Tensor,
    target_out: Tensor,
    ci: CausalImportances,
    config: Config,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """The metrics of one eval batch of token ids (batch, seq), target logits (batch, seq, vocab)."""
    ce = {"target": next_token_ce(target_out, batch)}
    metrics: dict[str, Tensor] = {}
    with model.weight_deltas():
        for variant, masks in variant_masks(model, ci, config, generator).items():
            logits = model(batch, masks=masks)
            ce[variant] = next_token_ce(logits, batch)
            metrics[metric_name(KL, variant)] = output_distance(logits.float(), target_out.float(), "kl")
    gap = ce["zero_masked"] - ce["target"]
    for variant, value in ce.items():
        metrics[metric_name(CE, variant)] = value
        if variant not in ("target", "zero_masked"):
            metrics[metric_name(CE_UNRECOVERED, variant)] = (value - ce["target"]) / gap
    return metrics
