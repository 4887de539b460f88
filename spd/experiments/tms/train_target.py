"""Training a TMS target: reconstruct sparse features through the hidden bottleneck."""

import logging

import torch
from torch import Tensor
from tqdm import tqdm

from spd.experiments.tms.model import TMSModel
from spd.experiments.tms.task_config import TMSTargetConfig
from spd.sparse_features import sample_sparse_features

logger = logging.getLogger(__name__)

MIN_FEATURE_NORM = 0.5
"""A trained target represents feature j when column j of linear1 has at least this norm."""
MAX_SEED_TRIES = 5


def train_tms_once(
    config: TMSTargetConfig, seed: int, device: torch.device, *, progress: bool
) -> TMSModel:
    torch.manual_seed(seed)
    model = TMSModel(config, tied=config.tied_weights).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.train_lr, weight_decay=config.train_weight_decay)
    steps = tqdm(
        range(config.train_steps),
        desc=f"train TMS target (seed {seed})",
        leave=False,
        disable=not progress,
    )
    for _ in steps:
        x = sample_sparse_features(
            config.train_batch_size,
            config.n_features,
            config.train_feature_probability,
            "at_least_zero_active",
            (0.0, 1.0),
            generator,
            device,
        )
        loss = ((x.abs() - model(x)) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def unrepresented_features(model: TMSModel) -> list[int]:
    norms = model.linear1.weight.detach().norm(dim=0)
    return [j for j, norm in enumerate(norms.tolist()) if norm <= MIN_FEATURE_NORM]


def train_tms_target(
    config: TMSTargetConfig, device: torch.device, *, progress: bool
) -> dict[str, Tensor]:
    """Train until every feature is represented, moving to the next seed when one is not."""
    for seed in range(config.train_seed, config.train_seed + MAX_SEED_TRIES):
        model = train_tms_once(config, seed, device, progress=progress)
        missing = unrepresented_features(model)
        if not missing:
            return {k: v.cpu() for k, v in model.untied_state_dict().items()}
        logger.warning(
            "TMS target trained with seed %d leaves features %s unrepresented "
            "(column norm <= %.1f); retraining with seed %d",
            seed, missing, MIN_FEATURE_NORM, seed + 1,
        )
    raise RuntimeError(
        f"no TMS target represented every feature after {MAX_SEED_TRIES} seeds "
        f"starting at {config.train_seed}; change train_* settings"
    )
