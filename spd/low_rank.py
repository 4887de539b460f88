"""Activations kept in factored form, Σ_i coeffs_i @ basis_i (+ bias), instead of as one tensor.

A residual stream far wider than what writes into it is cheaper to carry factored. In the
residual MLPs the stream is d_embed = 1000 wide, but it is written by the n_features embedding
rows and by each MLP's d_mlp output directions (their components' U rows in a masked forward),
and it is only ever read through a matrix (an MLP's input weight, its components' V, the
unembedding). A read `stream @ M` then costs Σ_i rows·k_i·m + k_i·d·m instead of rows·d·m, and
its backward likewise: about a tenth of a dense resid_mlp step's matmul work. The values are the
dense ones up to float rounding (the products are associated differently).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LowRankSum:
    terms: tuple[tuple[Tensor, Tensor], ...]
    """(coeffs (..., k), basis (k, d)) pairs; every coeffs has the same leading shape."""
    bias: Tensor | None = None
    """(d,), added to every row; None: no bias."""

    @staticmethod
    def product(coeffs: Tensor, basis: Tensor, bias: Tensor | None = None) -> "LowRankSum":
        """coeffs @ basis (+ bias), unevaluated."""
        return LowRankSum(((coeffs, basis),), bias)

    @property
    def shape(self) -> torch.Size:
        coeffs, basis = self.terms[0]
        return torch.Size([*coeffs.shape[:-1], basis.shape[-1]])

    def __add__(self, other: "LowRankSum") -> "LowRankSum":
        if self.bias is None or other.bias is None:
            bias = self.bias if other.bias is None else other.bias
        else:
            bias = self.bias + other.bias
        return LowRankSum(self.terms + other.terms, bias)

    def __matmul__(self, matrix: Tensor) -> Tensor:
        """The dense product self @ matrix (d, m), computed term by term as coeffs @ (basis @ matrix)."""
        return self._summed(lambda basis: basis @ matrix)

    def linear(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """F.linear(self, weight, bias): self @ weight.T + bias."""
        out = self @ weight.T
        return out if bias is None else out + bias

    def dense(self) -> Tensor:
        return self._summed(lambda basis: basis)

    def _summed(self, read: Callable[[Tensor], Tensor]) -> Tensor:
        """Σ coeffs @ read(basis) + read(bias): `read` maps the d axis (the identity, or @ M)."""
        (coeffs, basis), *rest = self.terms
        out = coeffs @ read(basis)
        for coeffs, basis in rest:
            out = out + coeffs @ read(basis)
        return out if self.bias is None else out + read(self.bias)

    def zero_rows_possible(self) -> bool:
        """Whether a row can be zero for want of any term: only without a (non-zero) bias."""
        return self.bias is None or not bool(self.bias.any())

    def all_coeffs(self) -> Tensor:
        """Every term's coefficients side by side, (..., Σ k_i): without a bias, a row of the sum
        is zero where all of its coefficients are."""
        return torch.cat([coeffs for coeffs, _ in self.terms], -1)


Activations = Tensor | LowRankSum
"""A module's input or output: a tensor, or a residual stream kept factored."""


def as_dense(x: Activations) -> Tensor:
    return x.dense() if isinstance(x, LowRankSum) else x
