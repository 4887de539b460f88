"""The bounded activations that turn CI-function outputs into causal importances in [0, 1].

Each sigmoid type gives two functions: the "lower" CI used for masks, and the "upper" CI that the
importance-minimality loss penalises. Leaky variants keep a small slope (0.01) outside [0, 1] so
that components whose CI has saturated still receive gradient.
"""

from collections.abc import Callable

import torch
from torch import Tensor

LEAK = 0.01


def lower_leaky_hard(x: Tensor) -> Tensor:
    """Forward clamp(x, 0, 1); gradient LEAK below 0, 1 on (0, 1], 0 above 1.

    Below 0 the value is `leak - leak.detach()`: exactly 0, with the leak's gradient. Plain ops
    (no custom autograd function) keep the whole training step compilable.
    """
    leak = LEAK * x
    return torch.where(x > 0, x.clamp(max=1.0), leak - leak.detach())


def upper_leaky_hard(x: Tensor) -> Tensor:
    return torch.where(x > 1, 1 + LEAK * (x - 1), x.clamp(0.0, 1.0))


def hard(x: Tensor) -> Tensor:
    return x.clamp(0.0, 1.0)


SIGMOIDS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    # name: (lower, upper)
    "leaky_hard": (lower_leaky_hard, upper_leaky_hard),
    "upper_leaky_hard": (hard, upper_leaky_hard),
    "hard": (hard, hard),
    "normal": (torch.sigmoid, torch.sigmoid),
}
