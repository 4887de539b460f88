"""The TMS task: a frozen trained target and sparse-feature inputs."""

from pathlib import Path

import torch

from spd.experiments.tms.model import TMSModel
from spd.experiments.tms.task_config import TMSTaskConfig
from spd.experiments.tms.train_target import train_tms_target
from spd.sparse_features import sparse_feature_task
from spd.target_cache import target_state
from spd.tasks import Task


def load_tms_target(
    task_config: TMSTaskConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> TMSModel:
    target_config = task_config.target
    state = target_state(
        "tms",
        target_config,
        pretrained_model_path,
        lambda: train_tms_target(target_config, device, progress=progress),
    )
    model = TMSModel(target_config, tied=False)
    model.load_state_dict(state)
    return model.to(device).requires_grad_(False).eval()


def tms_skeleton(task_config: TMSTaskConfig) -> TMSModel:
    """The target's module tree without weights (meta device), as decomposition sees it."""
    with torch.device("meta"):
        return TMSModel(task_config.target, tied=False)


def build_tms_task(
    task_config: TMSTaskConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> Task:
    return sparse_feature_task(
        load_tms_target(task_config, pretrained_model_path, device, progress=progress),
        task_config.target.n_features,
        task_config.feature_probability,
        task_config.data_generation_type,
        (0.0, 1.0),
        device,
        task_config.sampler,
    )
