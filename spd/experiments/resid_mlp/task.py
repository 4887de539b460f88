"""The residual-MLP task: a frozen trained target and sparse inputs in [-1, 1]."""

from pathlib import Path

import torch

from spd.experiments.resid_mlp.model import ResidMLP
from spd.experiments.resid_mlp.task_config import ResidMLPTaskConfig
from spd.experiments.resid_mlp.train_target import VALUE_RANGE, train_resid_mlp_target
from spd.experiments.tms.task import PROBE_VALUE
from spd.sparse_features import sample_sparse_features
from spd.target_cache import target_state
from spd.tasks import Task


def load_resid_mlp_target(
    task_config: ResidMLPTaskConfig, pretrained_model_path: Path | None, device: torch.device
) -> ResidMLP:
    target_config = task_config.target
    state = target_state(
        "resid_mlp",
        target_config,
        pretrained_model_path,
        lambda: train_resid_mlp_target(target_config, device),
    )
    model = ResidMLP(target_config)
    model.load_state_dict(state)
    return model.to(device).requires_grad_(False).eval()


def build_resid_mlp_task(
    task_config: ResidMLPTaskConfig, pretrained_model_path: Path | None, device: torch.device
) -> Task:
    n_features = task_config.target.n_features

    def sample_batch(batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return sample_sparse_features(
            batch_size,
            n_features,
            task_config.feature_probability,
            task_config.data_generation_type,
            VALUE_RANGE,
            generator,
            device,
        )

    return Task(
        target=load_resid_mlp_target(task_config, pretrained_model_path, device),
        sample_batch=sample_batch,
        feature_probe=torch.eye(n_features, device=device) * PROBE_VALUE,
        independent_rows=True,
    )
