import pytest
import torch
import torch.nn.functional as F

from spd.component_model import ComponentModel, ModuleMask
from spd.experiments.resid_mlp.model import ResidMLP
from spd.experiments.resid_mlp.task_config import ResidMLPTargetConfig
from spd.low_rank import LowRankSum, as_dense


def test_sum_of_products_reads_like_its_dense_value():
    torch.manual_seed(0)
    a, A = torch.randn(5, 3), torch.randn(3, 8)
    b, B = torch.randn(5, 2), torch.randn(2, 8)
    bias, M = torch.randn(8), torch.randn(8, 4)
    plain = LowRankSum.product(a, A)
    with_bias = plain + LowRankSum.product(b, B, bias)
    torch.testing.assert_close(as_dense(with_bias), a @ A + b @ B + bias)
    torch.testing.assert_close(with_bias @ M, (a @ A + b @ B + bias) @ M)
    torch.testing.assert_close(with_bias.linear(M.T, bias[:4]), (a @ A + b @ B + bias) @ M + bias[:4])
    assert with_bias.shape == (5, 8)
    torch.testing.assert_close((with_bias + with_bias).dense(), 2 * with_bias.dense())  # biases add
    assert plain.zero_rows_possible() and not with_bias.zero_rows_possible()
    assert with_bias.all_coeffs().shape == (5, 5)


def reference_forward(model: ComponentModel, target: ResidMLP, x, masks, deltas):
    """The masked forward in dense math: each masked module is (x V * mask) U + b (+ delta)."""

    def apply(path, module, inp):
        if path not in masks:
            return F.linear(inp, module.weight, module.bias)
        components = model.components_of(path)
        out = (inp @ components.V * masks[path].mask) @ components.U + module.bias
        return out + masks[path].delta_mask[:, None] * (inp @ deltas[path].T)

    resid = x @ target.W_E
    for i, layer in enumerate(target.layers):
        hidden = F.relu(apply(f"layers.{i}.mlp_in", layer.mlp_in, resid))
        resid = resid + apply(f"layers.{i}.mlp_out", layer.mlp_out, hidden)
    return resid @ target.W_U


@pytest.mark.parametrize("masked", [["layers.0.mlp_in"], ["layers.1.mlp_out"], "all"])
def test_masked_forward_of_a_factored_residual_stream_equals_the_dense_math(masked):
    torch.manual_seed(0)
    config = ResidMLPTargetConfig(
        n_features=20, d_embed=64, d_mlp=8, n_layers=2, train_steps=1, in_bias=True, out_bias=True
    )
    target = ResidMLP(config)
    for layer in target.layers:
        torch.nn.init.normal_(layer.mlp_in.bias)
        torch.nn.init.normal_(layer.mlp_out.bias)
    paths = [f"layers.{i}.{name}" for i in range(2) for name in ["mlp_in", "mlp_out"]]
    model = ComponentModel(target, dict.fromkeys(paths, 7), "mlp", [4], "leaky_hard", True)
    x = torch.randn(30, 20) * (torch.rand(30, 20) < 0.1)
    masks = {
        path: ModuleMask(torch.rand(30, 7), torch.rand(30))
        for path in (paths if masked == "all" else masked)
    }
    with model.weight_deltas() as deltas:
        factored = model(x, masks=masks)
        dense = reference_forward(model, target, x, masks, deltas)
    torch.testing.assert_close(factored, dense)
    params = list(model.components.parameters())
    grads = torch.autograd.grad(
        factored.square().sum(), params, allow_unused=True, retain_graph=True
    )  # the deltas W - UV are shared by both graphs
    dense_grads = torch.autograd.grad(dense.square().sum(), params, allow_unused=True)
    assert sum(grad is not None for grad in grads) == 2 * len(masks)  # V and U of each masked
    for grad, dense_grad in zip(grads, dense_grads, strict=True):
        # The products are associated differently: float rounding of gradients of size ~10.
        torch.testing.assert_close(grad, dense_grad, rtol=1e-5, atol=1e-4)


def test_nonzero_rows_of_a_factored_input_cover_every_nonzero_row():
    torch.manual_seed(0)
    config = ResidMLPTargetConfig(n_features=20, d_embed=64, d_mlp=8, n_layers=1, train_steps=1)
    model = ComponentModel(ResidMLP(config), {"layers.0.mlp_in": 5}, "mlp", [4], "leaky_hard", False)
    x = torch.randn(30, 20) * (torch.rand(30, 20) < 0.1)
    x[:4] = 0.0
    _, inputs = model.forward_caching_inputs(x)
    index = model.nonzero_rows(inputs)["layers.0.mlp_in"]
    dense = as_dense(inputs["layers.0.mlp_in"])
    assert set(index.tolist()) == set(dense.abs().sum(-1).nonzero().squeeze(-1).tolist())
    assert not {0, 1, 2, 3} & set(index.tolist())
