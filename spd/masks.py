"""Stochastic masks m = g + (1 - g) r between a component's causal importance g and 1.

The uniform draws r are taken apart from the masks they make (`draw_mask_noise`), before the
step's differentiable part runs: that part is then a pure function of its inputs, which
torch.compile can capture whole, and the draws come from the run's mask generator in the same
order either way.
"""

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MaskNoise:
    """The draws behind one set of masks: r (..., C) per module and, with a delta component,
    the delta's mask (...,) per module (its CI is 0, so its mask is r itself)."""

    component: dict[str, Tensor]
    delta: dict[str, Tensor] | None

    def rows(self, part: slice) -> "MaskNoise":
        """The draws of rows `part` (a data-parallel rank's part of a step)."""
        return MaskNoise(
            {path: r[part] for path, r in self.component.items()},
            None if self.delta is None else {path: r[part] for path, r in self.delta.items()},
        )


def draw_mask_noise(
    ci_shapes: dict[str, torch.Size], use_delta: bool, generator: torch.Generator
) -> MaskNoise:
    component: dict[str, Tensor] = {}
    delta: dict[str, Tensor] = {}
    device = generator.device
    for path, shape in ci_shapes.items():
        component[path] = torch.rand(shape, generator=generator, device=device)
        if use_delta:
            delta[path] = torch.rand(shape[:-1], generator=generator, device=device)
    return MaskNoise(component, delta if use_delta else None)


def mask_from_noise(ci: Tensor, r: Tensor, sampling: str) -> Tensor:
    """`continuous`: r ~ U(0, 1) as drawn; `binomial`: r thresholded to Bernoulli(0.5).
    Either way m lies in [g, 1]."""
    if sampling == "binomial":
        r = (r < 0.5).to(r.dtype)
    return ci + (1 - ci) * r
