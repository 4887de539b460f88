"""The bounded activations that turn CI-function outputs into causal importances in [0, 1].

Each sigmoid type gives two functions: the "lower" CI used for masks, and the "upper" CI that the
importance-minimality loss penalises. Leaky variants keep a small slope (0.01) outside [0, 1] so
that components whose CI has saturated still receive gradient.
"""

from collections.abc import Callable

import torch
from torch import Tensor

LEAK = 0.01


class _LowerLeakyHard(torch.autograd.Function):
    """Forward clamp(x, 0, 1); backward slope LEAK below 0, 1 on (0, 1], 0 above 1."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        slope = torch.where(x <= 0, LEAK, (x <= 1).to(grad.dtype))
        return grad * slope


def lower_leaky_hard(x: Tensor) -> Tensor:
    return _LowerLeakyHard.apply(x)  # type: ignore[no-any-return]


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
