"""Stochastic masks m = g + (1 - g) r between a component's causal importance g and 1."""

import torch
from torch import Tensor


def sample_mask(ci: Tensor, sampling: str, generator: torch.Generator) -> Tensor:
    """`continuous`: r ~ U(0, 1); `binomial`: r ~ Bernoulli(0.5). Either way m lies in [g, 1]."""
    r = torch.rand(ci.shape, generator=generator, device=ci.device, dtype=ci.dtype)
    if sampling == "binomial":
        r = (r < 0.5).to(ci.dtype)
    return ci + (1 - ci) * r


def sample_delta_mask(ci: Tensor, generator: torch.Generator) -> Tensor:
    """The delta component (W - UV) has CI 0, so its mask is r ~ U(0, 1), one per position."""
    return torch.rand(ci.shape[:-1], generator=generator, device=ci.device, dtype=ci.dtype)
