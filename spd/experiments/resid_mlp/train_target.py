"""Training a residual-MLP target: the read-off of the residual stream should be x + ReLU(x), so
the MLPs must compute ReLU of n_features features in fewer neurons (compressed computation)."""

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from spd.config import LRSchedule
from spd.experiments.resid_mlp.model import ResidMLP
from spd.experiments.resid_mlp.task_config import ResidMLPTargetConfig
from spd.lr_schedule import lr_at
from spd.sparse_features import sample_sparse_features

VALUE_RANGE = (-1.0, 1.0)
"""Active features are uniform in this range, in target training and in decomposition."""
TRAIN_LR_SCHEDULE = LRSchedule(type="cosine")


def labels(x: Tensor) -> Tensor:
    return x + F.relu(x)


def train_resid_mlp_target(
    config: ResidMLPTargetConfig, device: torch.device, *, progress: bool
) -> dict[str, Tensor]:
    torch.manual_seed(config.train_seed)
    model = ResidMLP(config).to(device)
    generator = torch.Generator(device=device).manual_seed(config.train_seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train_lr, weight_decay=config.train_weight_decay
    )
    steps = tqdm(
        range(config.train_steps),
        desc="train residual-MLP target",
        leave=False,
        disable=not progress,
    )
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.train_steps, config.train_lr, TRAIN_LR_SCHEDULE)
        x = sample_sparse_features(
            config.train_batch_size,
            config.n_features,
            config.train_feature_probability,
            "at_least_zero_active",
            VALUE_RANGE,
            generator,
            device,
        )
        loss = F.mse_loss(model(x), labels(x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}
