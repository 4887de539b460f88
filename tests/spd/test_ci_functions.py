"""The CI functions' fast paths (memory-lean custom autograd, eager or compiled) against the plain
autograd reference: same outputs, same gradients, and no (rows, C, hidden) tensor kept."""

import pytest
import torch

from spd.ci_functions import make_ci_function
from spd.ci_kernels import gelu_and_derivative

CPU = torch.device("cpu")


def perturbed_ci_function(ci_fn_type, C, d_in, hidden, dtype, compile=False):
    """A CI function with non-zero biases, so that every parameter's gradient is exercised, and
    whose fast path runs on inputs of any size (by default small ones go to plain autograd)."""
    torch.manual_seed(0)
    ci_fn = make_ci_function(ci_fn_type, C, d_in, hidden, False, CPU, compile).to(dtype)
    with torch.no_grad():
        for param in ci_fn.parameters():
            param.add_(0.3 * torch.randn_like(param))
    if getattr(ci_fn, "kernels", None) is not None:
        ci_fn.kernels.plain_autograd_max_rows = 0
    return ci_fn


def outputs_and_grads(fn, ci_fn, x, grad_out):
    out = fn(x)
    return out, torch.autograd.grad(out, [x, *ci_fn.parameters()], grad_out)


def assert_fast_matches_reference(ci_fn, x, rtol, atol):
    grad_out = torch.randn(*x.shape[:-1], ci_fn_c(ci_fn), dtype=x.dtype)
    out, grads = outputs_and_grads(ci_fn.forward, ci_fn, x, grad_out)
    ref_out, ref_grads = outputs_and_grads(ci_fn.reference_forward, ci_fn, x, grad_out)
    torch.testing.assert_close(out, ref_out, rtol=rtol, atol=atol)
    names = ["input", *(name for name, _ in ci_fn.named_parameters())]
    for name, grad, ref_grad in zip(names, grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=atol, msg=f"gradient of {name}")
    with torch.no_grad():
        torch.testing.assert_close(ci_fn(x), ref_out, rtol=rtol, atol=atol)


def ci_fn_c(ci_fn):
    return ci_fn.out.W.shape[0] if hasattr(ci_fn, "out") else ci_fn.net[-1].out_features


CASES = [
    # ci_fn_type, C, d_in, hidden dims, leading shape of the input
    ("mlp", 7, 5, [16], (13,)),
    ("mlp", 40, 5, [128], (3, 11)),  # several leading axes (batch, position)
    ("mlp", 3, 5, [2, 4], (6,)),  # deeper MLPs take the reference path
    ("vector_mlp", 6, 9, [8], (10,)),
    ("vector_mlp", 5, 4, [300], (2, 7)),  # > 1 chunk of rows: chunks of 2**21 // (5 * 300)
    ("vector_mlp", 6, 9, [8, 3], (10,)),
    ("shared_mlp", 6, 9, [8], (4, 5)),
]


@pytest.mark.parametrize(("ci_fn_type", "C", "d_in", "hidden", "lead"), CASES)
def test_eager_fast_path_equals_reference(ci_fn_type, C, d_in, hidden, lead):
    ci_fn = perturbed_ci_function(ci_fn_type, C, d_in, hidden, torch.float64)
    x = torch.randn(
        *lead, C if ci_fn_type == "mlp" else d_in, dtype=torch.float64, requires_grad=True
    )
    assert_fast_matches_reference(ci_fn, x, rtol=1e-10, atol=1e-10)


def test_eager_mlp_chunks_rows_and_still_matches():
    ci_fn = perturbed_ci_function("mlp", 64, 5, [128], torch.float64)
    assert ci_fn.kernels.rows_per_chunk == 2**21 // (64 * 128)  # 256 rows
    x = torch.randn(600, 64, dtype=torch.float64, requires_grad=True)  # 3 chunks, the last partial
    assert_fast_matches_reference(ci_fn, x, rtol=1e-10, atol=1e-10)


def test_small_eager_inputs_use_plain_autograd_and_large_ones_the_kernels():
    ci_fn = make_ci_function("mlp", 64, 5, [128], False, CPU)  # chunks of 2**21 // (64 * 128) rows
    assert ci_fn.kernels.plain_autograd_max_rows == ci_fn.kernels.rows_per_chunk == 256
    small, large = (
        torch.randn(256, 64, requires_grad=True),
        torch.randn(257, 64, requires_grad=True),
    )
    assert saved_elements(ci_fn, small) >= 256 * 64 * 128
    assert saved_elements(ci_fn, large) < 257 * 64 * 128 / 10


def assert_compiled_matches_reference(case, row_counts):
    ci_fn_type, C, d_in, hidden, _ = case
    ci_fn = perturbed_ci_function(ci_fn_type, C, d_in, hidden, torch.float32, compile=True)
    for lead in row_counts:
        x = torch.randn(*lead, C if ci_fn_type == "mlp" else d_in, requires_grad=True)
        # The fused GELU approximates erf to about 3e-7 in float32.
        assert_fast_matches_reference(ci_fn, x, rtol=1e-4, atol=1e-5)


def test_compiled_mlp_equals_reference():
    """The compiled kernels of the configs' `compile: true` (a compile of about half a minute)."""
    assert_compiled_matches_reference(CASES[1], [(3, 11), (50,)])


@pytest.mark.parametrize(("C", "hidden", "rows_last"), [(40, [128], True), (7, [16], False)])
def test_mlp_in_a_compiled_step_equals_reference(C, hidden, rows_last, monkeypatch):
    """Inside a compiled training step (`compile_step`), wide `mlp` CI functions run rows last
    (ROWS_LAST_MIN_HIDDEN), narrow ones the reference math: either way its values and gradients."""
    ci_fn = perturbed_ci_function("mlp", C, 5, hidden, torch.float32)
    assert ci_fn.rows_last_in_compiled_step == rows_last
    traced_rows_last = []
    rows_last_forward = type(ci_fn).rows_last_forward

    def recording(self, inner_acts):
        traced_rows_last.append(True)
        return rows_last_forward(self, inner_acts)

    monkeypatch.setattr(type(ci_fn), "rows_last_forward", recording)
    torch._dynamo.reset()
    step = torch.compile(lambda x: ci_fn(x), dynamic=True)
    x = torch.randn(3, 11, C, requires_grad=True)
    grad_out = torch.randn(3, 11, C)
    out, grads = outputs_and_grads(step, ci_fn, x, grad_out)
    ref_out, ref_grads = outputs_and_grads(ci_fn.reference_forward, ci_fn, x, grad_out)
    assert bool(traced_rows_last) == rows_last
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    names = ["input", *(name for name, _ in ci_fn.named_parameters())]
    for name, grad, ref_grad in zip(names, grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5, msg=f"gradient of {name}")


@pytest.mark.slow
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[3], CASES[4]])
def test_compiled_fast_paths_equal_reference_at_every_row_count(case):
    # One row is a separate compile (dynamic shapes specialise sizes 0 and 1).
    assert_compiled_matches_reference(case, [case[-1], (1,), (2,)])


def test_fused_gelu_and_derivative_match_autograd():
    x = torch.linspace(-9, 9, 2001, dtype=torch.float64, requires_grad=True)
    gelu, derivative = gelu_and_derivative(x.detach())
    reference = torch.nn.functional.gelu(x)
    (reference_derivative,) = torch.autograd.grad(reference.sum(), x)
    # |erf error| < 1.5e-7, so Φ is off by < 0.75e-7 and x·Φ by < 0.75e-7·|x|.
    bound = 0.75e-7 * (1 + x.detach().abs())
    assert ((gelu - reference.detach()).abs() <= bound).all()
    assert ((derivative - reference_derivative).abs() <= bound).all()


def saved_elements(fn, x):
    """How many tensor elements autograd keeps for the backward of fn(x)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(x)
    return total


@pytest.mark.parametrize("ci_fn_type", ["mlp", "vector_mlp"])
def test_fast_path_keeps_no_hidden_activations(ci_fn_type):
    C, d_in, hidden, rows = 50, 20, [64], 200
    ci_fn = perturbed_ci_function(ci_fn_type, C, d_in, hidden, torch.float32)
    x = torch.randn(rows, C if ci_fn_type == "mlp" else d_in, requires_grad=True)
    params = sum(p.numel() for p in ci_fn.parameters())
    hidden_activation = rows * C * hidden[0]
    assert saved_elements(ci_fn.reference_forward, x) >= 2 * hidden_activation
    # The inputs, the parameters and (for mlp) the slope ∂out/∂input: nothing of size rows·C·hidden.
    assert saved_elements(ci_fn.forward, x) <= 2 * x.numel() + params


def test_bf16_inputs_give_float32_scores_and_bf16_input_gradients():
    ci_fn = perturbed_ci_function("mlp", 6, 5, [16], torch.float32)
    x = torch.randn(9, 6).to(torch.bfloat16).requires_grad_(True)
    out = ci_fn(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ci_fn.reference_forward(x.float()))
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


def test_embedding_modules_only_take_mlp():
    with pytest.raises(ValueError, match="embedding modules need ci_fn_type 'mlp'"):
        make_ci_function("vector_mlp", 4, 10, [8], True, CPU)
