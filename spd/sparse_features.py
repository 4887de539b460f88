"""Sparse synthetic feature vectors, the inputs of the toy models (TMS and residual MLPs)."""

import torch
from torch import Tensor, nn

from spd.tasks import Task

EXACTLY_N_ACTIVE = {
    "exactly_one_active": 1,
    "exactly_two_active": 2,
    "exactly_three_active": 3,
    "exactly_four_active": 4,
    "exactly_five_active": 5,
}


def sample_sparse_features(
    batch_size: int,
    n_features: int,
    feature_probability: float,
    data_generation_type: str,
    value_range: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
) -> Tensor:
    """A (batch_size, n_features) batch whose active entries are uniform in value_range.

    `at_least_zero_active` activates each feature independently with `feature_probability`;
    `exactly_n_active` activates exactly n distinct features per row.
    """
    low, high = value_range
    values = torch.rand(batch_size, n_features, generator=generator, device=device)
    values = low + (high - low) * values
    if data_generation_type == "at_least_zero_active":
        active = torch.rand(batch_size, n_features, generator=generator, device=device)
        return values * (active < feature_probability)
    n_active = EXACTLY_N_ACTIVE[data_generation_type]
    if n_active > n_features:
        raise ValueError(f"{data_generation_type} needs at least {n_active} features")
    scores = torch.rand(batch_size, n_features, generator=generator, device=device)
    chosen = scores.topk(n_active, dim=-1).indices
    mask = torch.zeros(batch_size, n_features, device=device).scatter_(-1, chosen, 1.0)
    return values * mask


PROBE_VALUE = 0.75
"""Value of the single active feature in the probe inputs used for CI-per-feature metrics."""


def sparse_feature_task(
    target: nn.Module,
    n_features: int,
    feature_probability: float,
    data_generation_type: str,
    value_range: tuple[float, float],
    device: torch.device,
) -> Task:
    """A toy-model task: sparse feature batches, one-hot probes, independent rows."""

    def sample_batch(batch_size: int, generator: torch.Generator) -> Tensor:
        return sample_sparse_features(
            batch_size,
            n_features,
            feature_probability,
            data_generation_type,
            value_range,
            generator,
            device,
        )

    return Task(
        target=target,
        sample_batch=sample_batch,
        feature_probe=torch.eye(n_features, device=device) * PROBE_VALUE,
        independent_rows=True,
    )
