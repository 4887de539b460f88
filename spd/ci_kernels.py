"""Memory-lean passes of the one-hidden-layer per-component CI MLPs (`mlp` and `vector_mlp`).

Their hidden activations are the largest tensors of a step: with C = 500 components of 128
hidden units and 2048 rows one is (2048, 500, 128) floats, 0.5 GB, and plain autograd keeps
several per module. The autograd functions here keep only their inputs (and, for `mlp`, the
slope ∂out/∂input, of the input's size) and recompute the hidden layer in backward, a chunk of
rows at a time.

Each pass comes in two versions with the same math:
- eager: few, large ATen ops (F.gelu and its backward), on chunks of rows that bound the
  temporaries to CHUNK_ELEMENTS floats;
- compiled (`compile=True`): GELU written out so that torch.compile fuses each pass into one
  loop that shares a single exp between GELU and its derivative and writes nothing of size
  (rows, C, hidden), so the rows need no chunking. On CPU this is several times faster.
"""

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_ELEMENTS = 1 << 21
"""Rows per eager chunk are chosen so that one (rows, C, hidden) temporary holds about this many
floats (8 MB): small next to the full activations, big enough to amortise per-op overhead."""
WHOLE = 1 << 62
"""Rows per chunk of the compiled kernels: all of them."""
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
ERF_P, ERF_A1, ERF_A2, ERF_A3, ERF_A4, ERF_A5 = (
    0.3275911,
    0.254829592,
    -0.284496736,
    1.421413741,
    -1.453152027,
    1.061405429,
)
INDUCTOR_OPTIONS = {
    "realize_opcount_threshold": 1000,
    "realize_reads_threshold": 1000,
    "realize_acc_reads_threshold": 1000,
}
"""Let the compiler recompute GELU's shared terms inside each fused loop rather than store them in
(rows, C, hidden) buffers: never writing such a buffer is the point of these kernels."""


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    # dynamic: the number of rows changes every step (only non-trivial rows are evaluated).
    return torch.compile(fn, dynamic=True, options=INDUCTOR_OPTIONS)


def row_chunks(n_rows: int, rows_per_chunk: int) -> Iterator[slice]:
    for start in range(0, n_rows, rows_per_chunk):
        yield slice(start, min(start + rows_per_chunk, n_rows))


def needs_autograd(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


# --- GELU with its derivative from one exp, for the compiled kernels
def normal_cdf_and_pdf(x: Tensor) -> tuple[Tensor, Tensor]:
    """Φ(x) and φ(x) for one exp: Φ through the erf approximation of Abramowitz and Stegun
    (7.1.26, |error| < 1.5e-7; about 3e-7 in float32), whose exp(-z²) at z = x/√2 is φ's
    exp(-x²/2). A separate erf would cost about as much again."""
    e = torch.exp(-0.5 * x * x)
    t = 1.0 / (1.0 + ERF_P * SQRT_HALF * x.abs())
    poly = t * (ERF_A1 + t * (ERF_A2 + t * (ERF_A3 + t * (ERF_A4 + t * ERF_A5))))
    upper_tail = 0.5 * poly * e  # 1 - Φ(|x|)
    return torch.where(x >= 0, 1.0 - upper_tail, upper_tail), e * INV_SQRT_2PI


def gelu_and_derivative(x: Tensor) -> tuple[Tensor, Tensor]:
    """Exact (erf) GELU x·Φ(x) and its derivative Φ(x) + x·φ(x)."""
    cdf, pdf = normal_cdf_and_pdf(x)
    return x * cdf, cdf + x * pdf


# --- `mlp`: out[n, c] = Σ_h W2[c, h] gelu(a[n, c] W1[c, h] + b1[c, h]) (+ b2[c])
def scalar_mlp_pre(a: Tensor, W1: Tensor, b1: Tensor) -> Tensor:
    return torch.addcmul(b1, a.unsqueeze(-1), W1)  # (n, C, H)


def scalar_mlp_pre_rows_last(a_t: Tensor, W1: Tensor, b1: Tensor) -> Tensor:
    # Rows last: sums over rows become inner reductions over the contiguous axis, which the
    # compiler fuses into one loop (and which are batched matrix-vector products in eager).
    return torch.addcmul(b1.unsqueeze(-1), a_t.unsqueeze(1), W1.unsqueeze(-1))  # (C, H, n)


def fused_scalar_mlp_output(a: Tensor, W1: Tensor, b1: Tensor, W2: Tensor) -> Tensor:
    gelu, _ = gelu_and_derivative(scalar_mlp_pre(a, W1, b1))
    return (gelu * W2).sum(-1)


def fused_scalar_mlp_forward(
    a: Tensor, W1: Tensor, b1: Tensor, W2: Tensor
) -> tuple[Tensor, Tensor]:
    """The output and its slope ∂out[n, c]/∂a[n, c], all the input gradient needs."""
    gelu, derivative = gelu_and_derivative(scalar_mlp_pre(a, W1, b1))
    return (gelu * W2).sum(-1), (derivative * (W1 * W2)).sum(-1)


def fused_scalar_mlp_param_grads(
    a_t: Tensor, grad_t: Tensor, W1: Tensor, b1: Tensor, W2: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of W1, b1, W2 from the rows a_t (C, n) and the output gradient grad_t (C, n)."""
    gelu, derivative = gelu_and_derivative(scalar_mlp_pre_rows_last(a_t, W1, b1))
    grad = grad_t.unsqueeze(1)
    grad_pre_over_W2 = grad * derivative
    return (
        W2 * (a_t.unsqueeze(1) * grad_pre_over_W2).sum(-1),
        W2 * grad_pre_over_W2.sum(-1),
        (grad * gelu).sum(-1),
    )


def eager_scalar_mlp_output(a: Tensor, W1: Tensor, b1: Tensor, W2: Tensor) -> Tensor:
    return (F.gelu(scalar_mlp_pre(a, W1, b1)) * W2).sum(-1)


def eager_scalar_mlp_forward(
    a: Tensor, W1: Tensor, b1: Tensor, W2: Tensor
) -> tuple[Tensor, Tensor]:
    pre = scalar_mlp_pre(a, W1, b1)
    slope = torch.ops.aten.gelu_backward((W1 * W2).expand_as(pre), pre).sum(-1)
    return (F.gelu(pre) * W2).sum(-1), slope


def eager_scalar_mlp_param_grads(
    a_t: Tensor, grad_t: Tensor, W1: Tensor, b1: Tensor, W2: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    pre = scalar_mlp_pre_rows_last(a_t, W1, b1)
    grad_pre_over_W2 = torch.ops.aten.gelu_backward(grad_t.unsqueeze(1).expand_as(pre), pre)
    return (
        W2 * torch.bmm(grad_pre_over_W2, a_t.unsqueeze(-1)).squeeze(-1),
        W2 * grad_pre_over_W2.sum(-1),
        torch.bmm(F.gelu(pre), grad_t.unsqueeze(-1)).squeeze(-1),
    )


class ScalarMLPKernels:
    def __init__(self, compile: bool, C: int, hidden: int):
        self.build_args = (compile, C, hidden)
        self.output: Callable[..., Tensor]
        self.forward: Callable[..., tuple[Tensor, Tensor]]
        self.param_grads: Callable[..., tuple[Tensor, Tensor, Tensor]]
        if compile:
            self.output = compiled(fused_scalar_mlp_output)
            self.forward = compiled(fused_scalar_mlp_forward)
            self.param_grads = compiled(fused_scalar_mlp_param_grads)
            self.rows_per_chunk = WHOLE
        else:
            self.output = eager_scalar_mlp_output
            self.forward = eager_scalar_mlp_forward
            self.param_grads = eager_scalar_mlp_param_grads
            self.rows_per_chunk = max(1, CHUNK_ELEMENTS // (C * hidden))
        self.plain_autograd_max_rows = 0 if compile else self.rows_per_chunk
        """Up to one chunk of rows, plain autograd keeps no more than a chunk would and skips
        the recomputation, so the eager kernels leave such small inputs to it."""

    def __reduce__(self) -> tuple[Any, ...]:  # compiled functions do not pickle; rebuild them
        return type(self), self.build_args


def scalar_mlp(
    a: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, kernels: ScalarMLPKernels
) -> Tensor:
    """The one-hidden-layer `mlp` on rows a (n, C): through the custom autograd function when a
    gradient is wanted, straight through the output kernel otherwise (evaluation)."""
    if needs_autograd(a, W1, b1, W2, b2):
        return _ScalarMLP.apply(a, W1, b1, W2, b2, kernels)  # type: ignore[no-any-return]
    out = a.new_empty(a.shape)
    for rows in row_chunks(a.shape[0], kernels.rows_per_chunk):
        out[rows] = kernels.output(a[rows], W1, b1, W2)
    return out.add_(b2)


class _ScalarMLP(torch.autograd.Function):
    """Saves the rows a and the slope ∂out/∂a, both (n, C); recomputes the rest in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        a: Tensor,
        W1: Tensor,
        b1: Tensor,
        W2: Tensor,
        b2: Tensor,
        kernels: ScalarMLPKernels,
    ) -> Tensor:
        out, slope = a.new_empty(a.shape), a.new_empty(a.shape)
        for rows in row_chunks(a.shape[0], kernels.rows_per_chunk):
            out[rows], slope[rows] = kernels.forward(a[rows], W1, b1, W2)
        ctx.kernels = kernels
        ctx.save_for_backward(a, W1, b1, W2, slope)
        return out.add_(b2)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        a, W1, b1, W2, slope = ctx.saved_tensors
        a_t, grad_t = a.T.contiguous(), grad_out.T.contiguous()
        grads = [torch.zeros_like(W1), torch.zeros_like(b1), torch.zeros_like(W2)]
        for rows in row_chunks(a.shape[0], ctx.kernels.rows_per_chunk):
            torch._foreach_add_(
                grads, ctx.kernels.param_grads(a_t[:, rows], grad_t[:, rows], W1, b1, W2)
            )
        return grad_out * slope, *grads, grad_out.sum(0), None


# --- `vector_mlp`: out[n, c] = Σ_h W2[c, h] gelu(x W_in + b_in)[n, c, h] (+ b2[c])
def vector_mlp_output(x: Tensor, W_in: Tensor, b_in: Tensor, W2: Tensor) -> Tensor:
    pre = torch.addmm(b_in, x, W_in).unflatten(-1, W2.shape)
    return (F.gelu(pre) * W2).sum(-1)


def vector_mlp_grads(
    x: Tensor, grad_out: Tensor, W_in: Tensor, b_in: Tensor, W2: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of x, W_in, b_in, W2 from rows x (n, d_in) and the output gradient (n, C)."""
    pre = torch.addmm(b_in, x, W_in).unflatten(-1, W2.shape)
    grad = grad_out.unsqueeze(-1)
    grad_pre = torch.ops.aten.gelu_backward(grad * W2, pre).flatten(-2)
    return grad_pre @ W_in.T, x.T @ grad_pre, grad_pre.sum(0), (F.gelu(pre) * grad).sum(0)


class VectorMLPKernels:
    """Always chunked: the matmuls need a chunk's hidden pre-activations in memory."""

    def __init__(self, compile: bool, C: int, hidden: int):
        self.build_args = (compile, C, hidden)
        self.output = compiled(vector_mlp_output) if compile else vector_mlp_output
        self.grads = compiled(vector_mlp_grads) if compile else vector_mlp_grads
        self.rows_per_chunk = max(1, CHUNK_ELEMENTS // (C * hidden))
        self.plain_autograd_max_rows = 0 if compile else self.rows_per_chunk

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), self.build_args


def vector_mlp(
    x: Tensor, W_in: Tensor, b_in: Tensor, W2: Tensor, b2: Tensor, kernels: VectorMLPKernels
) -> Tensor:
    """The one-hidden-layer `vector_mlp` on rows x (n, d_in); see scalar_mlp."""
    if needs_autograd(x, W_in, b_in, W2, b2):
        return _VectorMLP.apply(x, W_in, b_in, W2, b2, kernels)  # type: ignore[no-any-return]
    return vector_mlp_chunked_output(x, W_in, b_in, W2, kernels).add_(b2)


def vector_mlp_chunked_output(
    x: Tensor, W_in: Tensor, b_in: Tensor, W2: Tensor, kernels: VectorMLPKernels
) -> Tensor:
    out = x.new_empty(x.shape[0], W2.shape[0])
    for rows in row_chunks(x.shape[0], kernels.rows_per_chunk):
        out[rows] = kernels.output(x[rows], W_in, b_in, W2)
    return out


class _VectorMLP(torch.autograd.Function):
    """Saves the rows x only; recomputes the hidden layer chunk by chunk in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        W_in: Tensor,
        b_in: Tensor,
        W2: Tensor,
        b2: Tensor,
        kernels: VectorMLPKernels,
    ) -> Tensor:
        ctx.kernels = kernels
        ctx.save_for_backward(x, W_in, b_in, W2)
        return vector_mlp_chunked_output(x, W_in, b_in, W2, kernels).add_(b2)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, W_in, b_in, W2 = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x)
        grads = [torch.zeros_like(W_in), torch.zeros_like(b_in), torch.zeros_like(W2)]
        for rows in row_chunks(x.shape[0], ctx.kernels.rows_per_chunk):
            grad_x[rows], *param_grads = ctx.kernels.grads(x[rows], grad_out[rows], W_in, b_in, W2)
            torch._foreach_add_(grads, param_grads)
        return grad_x, *grads, grad_out.sum(0), None
