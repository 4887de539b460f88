"""Causal-importance functions: map a module's input to one pre-sigmoid score per subcomponent.

- `mlp` (the paper's): each component c has its own scalar MLP of its inner act (x @ V)[c].
- `vector_mlp`: each component has its own MLP of the whole input vector x.
- `shared_mlp`: one MLP of x with C outputs.

The per-component MLPs are batched: the weights of all C MLPs of a layer form one (C, in, out)
tensor, so a layer is one op over every component instead of C small matmuls. With one hidden
layer (the paper's setting) `mlp` and `vector_mlp` run through the memory-lean kernels of
spd.ci_kernels (fused by torch.compile with `compile=True`); `reference_forward` keeps the plain
autograd math, which deeper CI MLPs always use.
"""

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spd.ci_kernels import (
    ScalarMLPKernels,
    VectorMLPKernels,
    scalar_mlp,
    scalar_mlp_pre_rows_last,
    vector_mlp,
)

RELU_GAIN = math.sqrt(2.0)
ROWS_LAST_MIN_HIDDEN = 2048
"""From this many hidden units per row (C × hidden), a compiled step (`compile_step`) computes
the `mlp` CI function rows last, which costs two transposes of the (rows, C) tensors and makes
its backward's sums over rows contiguous. Measured at 1 thread, 150 steps: tms_40-10 (3,200)
2.9 -> 3.4 steps/s; tms_5-2 (320) 99 -> 83; resid_mlp1 (1,600 and 800, 2 threads) 15.0 -> 14.0."""


def n_rows(x: Tensor) -> int:
    return math.prod(x.shape[:-1])


def flat_rows(fn: Callable[[Tensor], Tensor], x: Tensor, dtype: torch.dtype) -> Tensor:
    """fn on x with every leading axis flattened into rows, computed in `dtype`."""
    out = fn(x.reshape(-1, x.shape[-1]).to(dtype))
    return out.reshape(*x.shape[:-1], out.shape[-1])


def scaled_normal(
    shape: tuple[int, ...], gain: float, fan_in: int, device: torch.device
) -> Tensor:
    """Normal draws times gain / sqrt(fan_in). On the meta device (a module structure, as
    spd.validate builds it) an empty tensor: the meta kernels of the arithmetic would import
    torch._dynamo (~1 s) for values nobody reads."""
    if torch.device(device).type == "meta":
        return torch.empty(shape, device=device)
    return torch.randn(shape, device=device) * gain / math.sqrt(fan_in)


class ParallelLinear(nn.Module):
    """C independent linear maps in -> out applied to inputs of shape (..., C, in)."""

    def __init__(self, C: int, d_in: int, d_out: int, gain: float, device: torch.device):
        super().__init__()
        self.W = nn.Parameter(scaled_normal((C, d_in, d_out), gain, d_in, device))
        self.b = nn.Parameter(torch.zeros(C, d_out, device=device))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("...ci,cio->...co", x, self.W) + self.b


def plain_autograd_suits(kernels: ScalarMLPKernels | VectorMLPKernels | None, x: Tensor) -> bool:
    """Whether to run the plain autograd math rather than the kernels: for deeper MLPs (no
    kernels), inputs of at most one chunk, and inside a compiled training step
    (`compile_step`), whose compiler fuses that math itself."""
    # is_compiling first: a row-count test inside a compiled step would become a guard on the
    # number of rows, and a step whose rows cross it would recompile.
    return (
        torch.compiler.is_compiling()
        or kernels is None
        or n_rows(x) <= kernels.plain_autograd_max_rows
    )


def gelu(x: Tensor) -> Tensor:
    """Exact GELU. Inside a compiled graph it is written out as x·Φ(x), the same function: the
    compiler then evaluates Φ's erf once per element and keeps it for the backward, where
    F.gelu's backward evaluates it again (resid_mlp1's CI MLP: 10.0 vs 12.9 ms forward and
    backward on 2 CPU threads). Eager mode keeps F.gelu's single kernel."""
    if torch.compiler.is_compiling():
        return x * (0.5 + 0.5 * torch.erf(x * (1 / math.sqrt(2))))
    return F.gelu(x)


class PerComponentMLP(nn.Module):
    """`mlp`: scalar -> hidden dims -> scalar for each component, GELU between layers."""

    def __init__(self, C: int, hidden_dims: list[int], device: torch.device, compile: bool = False):
        super().__init__()
        if not hidden_dims:
            raise ValueError("mlp needs at least one hidden dim")
        dims = [1, *hidden_dims]
        self.hidden = nn.ModuleList(
            ParallelLinear(C, a, b, RELU_GAIN, device) for a, b in itertools.pairwise(dims)
        )
        self.out = ParallelLinear(C, dims[-1], 1, 1.0, device)
        self.kernels = (
            ScalarMLPKernels(compile, C, hidden_dims[0]) if len(hidden_dims) == 1 else None
        )
        self.rows_last_in_compiled_step = (
            len(hidden_dims) == 1 and C * hidden_dims[0] >= ROWS_LAST_MIN_HIDDEN
        )

    def forward(self, inner_acts: Tensor) -> Tensor:
        if self.rows_last_in_compiled_step and torch.compiler.is_compiling():
            return self.rows_last_forward(inner_acts)
        if plain_autograd_suits(self.kernels, inner_acts):
            return self.reference_forward(inner_acts)
        first, kernels = self.hidden[0], self.kernels
        W1, W2, b2 = first.W[:, 0, :], self.out.W[:, :, 0], self.out.b[:, 0]  # type: ignore[index]
        return flat_rows(
            lambda a: scalar_mlp(a, W1, first.b, W2, b2, kernels), inner_acts, W1.dtype
        )

    def rows_last_forward(self, inner_acts: Tensor) -> Tensor:
        """The reference math of one hidden layer on (C, hidden, rows): the backward's sums over
        rows (the parameter gradients) become inner reductions over a contiguous axis, which
        the compiler turns into fast loops (ROWS_LAST_MIN_HIDDEN)."""
        first = self.hidden[0]
        a_t = inner_acts.reshape(-1, inner_acts.shape[-1]).T
        h = gelu(scalar_mlp_pre_rows_last(a_t, first.W[:, 0, :], first.b))
        out = (h * self.out.W[:, :, 0].unsqueeze(-1)).sum(1).T + self.out.b[:, 0]
        return out.reshape(inner_acts.shape)

    def reference_forward(self, inner_acts: Tensor) -> Tensor:
        """The plain autograd math, which keeps every hidden activation for backward."""
        first, *rest = self.hidden
        # in_dim 1 and out_dim 1 make the first and last layers broadcasts, not matmuls.
        h = gelu(torch.addcmul(first.b, inner_acts.unsqueeze(-1), first.W[:, 0, :]))
        for layer in rest:
            h = gelu(layer(h))
        return (h * self.out.W[:, :, 0]).sum(-1) + self.out.b[:, 0]


class PerComponentVectorMLP(nn.Module):
    """`vector_mlp`: d_in -> hidden dims -> scalar for each component, GELU between layers."""

    def __init__(
        self, C: int, d_in: int, hidden_dims: list[int], device: torch.device, compile: bool = False
    ):
        super().__init__()
        if not hidden_dims:
            raise ValueError("vector_mlp needs at least one hidden dim")
        first, *rest = hidden_dims
        self.C, self.first_dim = C, first
        # The first layer reads the same x for every component: one (d_in, C * h) matmul.
        self.W_in = nn.Parameter(scaled_normal((d_in, C * first), RELU_GAIN, d_in, device))
        self.b_in = nn.Parameter(torch.zeros(C * first, device=device))
        dims = [first, *rest]
        self.hidden = nn.ModuleList(
            ParallelLinear(C, a, b, RELU_GAIN, device) for a, b in itertools.pairwise(dims)
        )
        self.out = ParallelLinear(C, dims[-1], 1, 1.0, device)
        self.kernels = VectorMLPKernels(compile, C, first) if not rest else None

    def forward(self, x: Tensor) -> Tensor:
        if plain_autograd_suits(self.kernels, x):
            return self.reference_forward(x)
        W2, b2, kernels = self.out.W[:, :, 0], self.out.b[:, 0], self.kernels
        return flat_rows(
            lambda rows: vector_mlp(rows, self.W_in, self.b_in, W2, b2, kernels), x, self.W_in.dtype
        )

    def reference_forward(self, x: Tensor) -> Tensor:
        """The plain autograd math, which keeps every hidden activation for backward."""
        h = gelu(x @ self.W_in + self.b_in).unflatten(-1, (self.C, self.first_dim))
        for layer in self.hidden:
            h = gelu(layer(h))
        return self.out(h).squeeze(-1)


class SharedMLP(nn.Module):
    """`shared_mlp`: one MLP d_in -> hidden dims -> C. Its activations are (rows, hidden), small
    enough for plain autograd, so its forward is its reference."""

    def __init__(self, C: int, d_in: int, hidden_dims: list[int], device: torch.device):
        super().__init__()
        dims = [d_in, *hidden_dims, C]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(a, b, device=device))
            if i < len(dims) - 2:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def reference_forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_ci_function(
    ci_fn_type: str,
    C: int,
    d_in: int,
    hidden_dims: list[int],
    is_embedding: bool,
    device: torch.device,
    compile: bool = False,
) -> nn.Module:
    """The CI function of one module. Embeddings read token ids, so they only take `mlp`.

    `compile` fuses the custom passes of `mlp` and `vector_mlp` with torch.compile.
    """
    if is_embedding and ci_fn_type != "mlp":
        raise ValueError(f"embedding modules need ci_fn_type 'mlp', not {ci_fn_type!r}")
    if ci_fn_type == "mlp":
        return PerComponentMLP(C, hidden_dims, device, compile)
    if ci_fn_type == "vector_mlp":
        return PerComponentVectorMLP(C, d_in, hidden_dims, device, compile)
    if ci_fn_type == "shared_mlp":
        return SharedMLP(C, d_in, hidden_dims, device)
    raise ValueError(f"unknown ci_fn_type {ci_fn_type!r}")


def reads_inner_acts(ci_fn_type: str) -> bool:
    """Whether the CI function's input is x @ V (else the module input x itself)."""
    return ci_fn_type == "mlp"
