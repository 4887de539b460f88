"""Sparse synthetic feature vectors, the inputs of the toy models (TMS and residual MLPs)."""

import math

import torch
from torch import Tensor, nn

from spd.experiments.tms.task_config import DataGenerationType, FeatureSampler, check_sampler
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
    data_generation_type: DataGenerationType,
    value_range: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
    sampler: FeatureSampler = "every_entry",
) -> Tensor:
    """A (batch_size, n_features) batch whose active entries are uniform in value_range.

    `at_least_zero_active` activates each feature independently with `feature_probability`;
    `exactly_n_active` activates exactly n distinct features per row. The `sampler`
    "every_entry" draws two uniforms per entry; "active_entries" (at_least_zero_active only)
    draws the same distribution from about two per active entry (see active_entry_batch).
    """
    low, high = value_range
    check_sampler(sampler, data_generation_type)
    if sampler == "active_entries":
        return active_entry_batch(
            batch_size, n_features, feature_probability, value_range, generator, device
        )
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


def active_entry_batch(
    batch_size: int,
    n_features: int,
    feature_probability: float,
    value_range: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
) -> Tensor:
    """at_least_zero_active data drawn entry by active entry: in a Bernoulli(p) sequence the gaps
    between successes are independent Geometric(p) counts, so the active positions of the
    flattened batch are the running sums of such gaps (drawn by inverting the geometric CDF),
    and only they get a value. The same distribution as drawing every entry, from about
    2 p × the random numbers (for resid_mlp's p = 0.01, 1/50), but another random stream."""
    n_entries, low, high = batch_size * n_features, *value_range
    batch = torch.zeros(n_entries, device=device)
    expected = n_entries * feature_probability
    chunk = int(expected + 6 * math.sqrt(expected) + 16)  # one draw almost always reaches the end
    log_miss = math.log1p(-feature_probability) if feature_probability < 1 else -math.inf
    position, chunks = -1, []
    while position < n_entries - 1:
        u = torch.rand(chunk, generator=generator, device=device, dtype=torch.float64)
        gaps = torch.floor(torch.log1p(-u) / log_miss)  # failures before the next success
        positions = position + torch.cumsum(gaps + 1, 0)
        chunks.append(positions)
        position = int(positions[-1].item())
    active = torch.cat(chunks)
    active = active[active < n_entries].long()
    values = torch.rand(len(active), generator=generator, device=device)
    batch[active] = low + (high - low) * values
    return batch.view(batch_size, n_features)


PROBE_VALUE = 0.75
"""Value of the single active feature in the probe inputs used for CI-per-feature metrics."""


def sparse_feature_task(
    target: nn.Module,
    n_features: int,
    feature_probability: float,
    data_generation_type: DataGenerationType,
    value_range: tuple[float, float],
    device: torch.device,
    sampler: FeatureSampler = "every_entry",
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
            sampler,
        )

    return Task(
        target=target,
        sample_batch=sample_batch,
        feature_probe=torch.eye(n_features, device=device) * PROBE_VALUE,
        independent_rows=True,
    )
