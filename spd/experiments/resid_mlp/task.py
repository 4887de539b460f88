"""The residual-MLP task: a frozen trained target and sparse inputs in [-1, 1]."""

from pathlib import Path

import torch

from spd.experiments.resid_mlp.model import ResidMLP
from spd.experiments.resid_mlp.task_config import ResidMLPTaskConfig
from spd.experiments.resid_mlp.train_target import VALUE_RANGE, train_resid_mlp_target
from spd.sparse_features import sparse_feature_task
from spd.target_cache import target_state
from spd.tasks import Task


def load_resid_mlp_target(
    task_config: ResidMLPTaskConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> ResidMLP:
    target_config = task_config.target
    state = target_state(
        "resid_mlp",
        target_config,
        pretrained_model_path,
        lambda: train_resid_mlp_target(target_config, device, progress=progress),
    )
    model = ResidMLP(target_config)
    model.load_state_dict(state)
    return model.to(device).requires_grad_(False).eval()


def resid_mlp_skeleton(task_config: ResidMLPTaskConfig) -> ResidMLP:
    """The target's module tree without weights (meta device)."""
    with torch.device("meta"):
        return ResidMLP(task_config.target)


def build_resid_mlp_task(
    task_config: ResidMLPTaskConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> Task:
    return sparse_feature_task(
        load_resid_mlp_target(task_config, pretrained_model_path, device, progress=progress),
        task_config.target.n_features,
        task_config.feature_probability,
        task_config.data_generation_type,
        VALUE_RANGE,
        device,
        task_config.sampler,
    )
