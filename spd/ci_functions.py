"""Causal-importance functions: map a module's input to one pre-sigmoid score per subcomponent.

- `mlp` (the paper's): each component c has its own scalar MLP of its inner act (x @ V)[c].
- `vector_mlp`: each component has its own MLP of the whole input vector x.
- `shared_mlp`: one MLP of x with C outputs.

The per-component MLPs are batched: the weights of all C MLPs of a layer form one (C, in, out)
tensor, so a layer is one einsum over every component instead of C small matmuls.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ParallelLinear(nn.Module):
    """C independent linear maps in -> out applied to inputs of shape (..., C, in)."""

    def __init__(self, C: int, d_in: int, d_out: int, gain: float, device: torch.device):
        super().__init__()
        self.W = nn.Parameter(torch.randn(C, d_in, d_out, device=device) * gain / math.sqrt(d_in))
        self.b = nn.Parameter(torch.zeros(C, d_out, device=device))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("...ci,cio->...co", x, self.W) + self.b


RELU_GAIN = math.sqrt(2.0)


class PerComponentMLP(nn.Module):
    """`mlp`: scalar -> hidden dims -> scalar for each component, GELU between layers."""

    def __init__(self, C: int, hidden_dims: list[int], device: torch.device):
        super().__init__()
        if not hidden_dims:
            raise ValueError("mlp needs at least one hidden dim")
        dims = [1, *hidden_dims]
        self.hidden = nn.ModuleList(
            ParallelLinear(C, a, b, RELU_GAIN, device) for a, b in zip(dims[:-1], dims[1:])
        )
        self.out = ParallelLinear(C, dims[-1], 1, 1.0, device)

    def forward(self, inner_acts: Tensor) -> Tensor:
        first, *rest = self.hidden
        # in_dim 1 and out_dim 1 make the first and last layers broadcasts, not matmuls.
        h = F.gelu(torch.addcmul(first.b, inner_acts.unsqueeze(-1), first.W[:, 0, :]))
        for layer in rest:
            h = F.gelu(layer(h))
        return (h * self.out.W[:, :, 0]).sum(-1) + self.out.b[:, 0]


class PerComponentVectorMLP(nn.Module):
    """`vector_mlp`: d_in -> hidden dims -> scalar for each component, GELU between layers."""

    def __init__(self, C: int, d_in: int, hidden_dims: list[int], device: torch.device):
        super().__init__()
        if not hidden_dims:
            raise ValueError("vector_mlp needs at least one hidden dim")
        first, *rest = hidden_dims
        self.C, self.first_dim = C, first
        # The first layer reads the same x for every component: one (d_in, C * h) matmul.
        self.W_in = nn.Parameter(torch.randn(d_in, C * first, device=device) * RELU_GAIN / math.sqrt(d_in))
        self.b_in = nn.Parameter(torch.zeros(C * first, device=device))
        dims = [first, *rest]
        self.hidden = nn.ModuleList(
            ParallelLinear(C, a, b, RELU_GAIN, device) for a, b in zip(dims[:-1], dims[1:])
        )
        self.out = ParallelLinear(C, dims[-1], 1, 1.0, device)

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(x @ self.W_in + self.b_in).unflatten(-1, (self.C, self.first_dim))
        for layer in self.hidden:
            h = F.gelu(layer(h))
        return self.out(h).squeeze(-1)


class SharedMLP(nn.Module):
    """`shared_mlp`: one MLP d_in -> hidden dims -> C."""

    def __init__(self, C: int, d_in: int, hidden_dims: list[int], device: torch.device):
        super().__init__()
        dims = [d_in, *hidden_dims, C]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b, device=device))
            if i < len(dims) - 2:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_ci_function(
    ci_fn_type: str, C: int, d_in: int, hidden_dims: list[int], is_embedding: bool, device: torch.device
) -> nn.Module:
    """The CI function of one module. Embeddings read token ids, so they only take `mlp`."""
    if is_embedding and ci_fn_type != "mlp":
        raise ValueError(f"embedding modules need ci_fn_type 'mlp', not {ci_fn_type!r}")
    if ci_fn_type == "mlp":
        return PerComponentMLP(C, hidden_dims, device)
    if ci_fn_type == "vector_mlp":
        return PerComponentVectorMLP(C, d_in, hidden_dims, device)
    if ci_fn_type == "shared_mlp":
        return SharedMLP(C, d_in, hidden_dims, device)
    raise ValueError(f"unknown ci_fn_type {ci_fn_type!r}")


def reads_inner_acts(ci_fn_type: str) -> bool:
    """Whether the CI function's input is x @ V (else the module input x itself)."""
    return ci_fn_type == "mlp"
