"""C rank-one subcomponents of one target module: weight ≈ Σ_c U[c]ᵀ V[:, c]ᵀ.

V is (d_in, C) and U is (C, d_out); the summed weight (V @ U)ᵀ has nn.Linear's (d_out, d_in)
layout. A mask of shape (..., C) scales each subcomponent's contribution per position. The
optional delta component is the residual W - (V @ U)ᵀ with a mask of its own, shape (...,).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spd.low_rank import Activations, LowRankSum


def target_weight(module: nn.Module) -> Tensor:
    """The module's weight in nn.Linear layout (d_out, d_in); embeddings give (d_emb, vocab)."""
    if isinstance(module, nn.Linear):
        return module.weight
    if isinstance(module, nn.Embedding):
        return module.weight.T
    if type(module).__name__ == "Conv1D":  # GPT-2 stores (d_in, d_out)
        return module.weight.T
    raise TypeError(f"cannot decompose a {type(module).__name__}")


class Components(nn.Module):
    def __init__(self, target: nn.Module, C: int):
        super().__init__()
        weight = target_weight(target).detach()
        d_out, d_in = weight.shape
        self.C = C
        self.V = nn.Parameter(torch.empty(d_in, C, device=weight.device))
        self.U = nn.Parameter(torch.empty(C, d_out, device=weight.device))
        bias = getattr(target, "bias", None)
        # The target's frozen bias is shared (not copied, not saved): every masked forward adds it.
        self.bias: Tensor | None
        self.register_buffer(
            "bias", bias.detach() if isinstance(bias, Tensor) else None, persistent=False
        )
        self.init_from_target(weight)

    @torch.no_grad()
    def init_from_target(self, weight: Tensor) -> None:
        """Unit-norm random V columns and U rows, each U row scaled by Uᶜ·W·Vᶜ so the sum ≈ W."""
        if weight.is_meta:
            # A structure only (spd.validate): no values to draw, and the meta kernels of
            # normalize and einsum would import torch._dynamo (~1 s) for nothing.
            return
        V = F.normalize(torch.randn_like(self.V), dim=0)
        U = F.normalize(torch.randn_like(self.U), dim=1)
        scale = torch.einsum("co,oi,ic->c", U, weight.to(U.dtype), V)
        self.V.copy_(V)
        self.U.copy_(U * scale[:, None])

    @property
    def weight(self) -> Tensor:
        """Σ_c of the subcomponents, (d_out, d_in)."""
        return (self.V @ self.U).T

    def inner_acts(self, x: Activations) -> Tensor:
        """x @ V, shape (..., C): how strongly each subcomponent reads its input."""
        return x @ self.V

    def forward(
        self,
        x: Activations,
        mask: Tensor,
        weight_delta: Tensor | None = None,
        delta_mask: Tensor | None = None,
        inner_acts: Tensor | None = None,
        low_rank_output: bool = False,
    ) -> Activations:
        """`inner_acts`: x @ V when the caller has it already (computed on this same x).
        `low_rank_output`: return the output factored, (acts * mask) @ U (+ the delta term's
        (x * delta_mask) @ weight_deltaᵀ), for a factored residual stream (spd.low_rank)."""
        acts = self.inner_acts(x) if inner_acts is None else inner_acts
        if low_rank_output:
            if not isinstance(x, Tensor):
                raise TypeError("a factored output needs a dense input")
            factored = LowRankSum.product(acts * mask, self.U, self.bias)
            if weight_delta is not None and delta_mask is not None:
                factored = factored + LowRankSum.product(
                    x * delta_mask.unsqueeze(-1), weight_delta.T
                )
            return factored
        # F.linear adds the bias inside the matmul (addmm): no extra pass over the output.
        out = F.linear(acts * mask, self.U.T, self.bias)
        if weight_delta is not None and delta_mask is not None:
            out = out + delta_mask.unsqueeze(-1) * self.delta_out(x, weight_delta)
        return out

    def delta_out(self, x: Activations, weight_delta: Tensor) -> Tensor:
        return x @ weight_delta.T


class EmbeddingComponents(Components):
    """For nn.Embedding: the input is token ids, so x @ V becomes a row lookup V[ids]."""

    def inner_acts(self, x: Tensor) -> Tensor:
        return self.V[x]

    def delta_out(self, x: Tensor, weight_delta: Tensor) -> Tensor:
        return weight_delta.T[x]


def make_components(target: nn.Module, C: int) -> Components:
    if isinstance(target, nn.Embedding):
        return EmbeddingComponents(target, C)
    return Components(target, C)


class TransposedComponents(Components):
    """The subcomponents of a module whose weight is the transpose of another's (TMS's tied
    linear2 = linear1ᵀ), shared with that module's: V = sourceᵀ.U, U = sourceᵀ.V.

    Sharing lets the better-conditioned module (linear1, whose inputs are the sparse features)
    shape both decompositions. It owns no parameters, only the target's bias.
    """

    def __init__(self, source: Components, target: nn.Module):
        nn.Module.__init__(self)
        self.C = source.C
        object.__setattr__(self, "source", source)  # not a submodule: its parameters are source's
        bias = getattr(target, "bias", None)
        self.register_buffer(
            "bias", bias.detach() if isinstance(bias, Tensor) else None, persistent=False
        )

    @property
    def V(self) -> Tensor:  # type: ignore[override]
        return self.source.U.T

    @property
    def U(self) -> Tensor:  # type: ignore[override]
        return self.source.V.T
