import torch
import torch.nn.functional as F

from spd.experiments.resid_mlp.model import ResidMLP
from spd.experiments.resid_mlp.task_config import ResidMLPTargetConfig
from spd.experiments.resid_mlp.train_target import VALUE_RANGE, labels, train_resid_mlp_target
from spd.sparse_features import sample_sparse_features

SMALL = ResidMLPTargetConfig(
    n_features=20,
    d_embed=64,
    d_mlp=8,
    n_layers=2,
    train_steps=300,
    train_batch_size=512,
    train_feature_probability=0.05,
)


def test_embedding_is_fixed_unit_norm_and_unembedding_is_its_transpose():
    model = ResidMLP(SMALL)
    torch.testing.assert_close(model.W_E.norm(dim=1), torch.ones(20))
    assert torch.equal(model.W_U, model.W_E.T)
    assert "W_E" not in dict(model.named_parameters())  # a buffer: never trained
    assert torch.equal(ResidMLP(SMALL).W_E, model.W_E)  # drawn from train_seed
    other_seed = SMALL.model_copy(update={"train_seed": 1})
    assert not torch.equal(ResidMLP(other_seed).W_E, model.W_E)


def test_layers_are_the_decomposable_linear_modules_without_biases():
    model = ResidMLP(SMALL)
    linears = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears == {"layers.0.mlp_in", "layers.0.mlp_out", "layers.1.mlp_in", "layers.1.mlp_out"}
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert model.layers[0].mlp_in.weight.shape == (8, 64)


def test_forward_reads_the_residual_stream_off_with_the_embedding():
    model = ResidMLP(SMALL)
    for layer in model.layers:
        torch.nn.init.zeros_(layer.mlp_out.weight)  # MLPs write nothing: out = x W_E W_Eᵀ
    x = torch.zeros(3, 20)
    x[0, 4], x[1, 7], x[2, 4], x[2, 9] = 0.5, -1.0, 1.0, 1.0
    out = model(x)
    torch.testing.assert_close(out, x @ model.W_E @ model.W_E.T)
    assert torch.isclose(out[0, 4], torch.tensor(0.5))  # unit rows: a feature reads itself back


def test_trained_target_computes_relu_beyond_the_residual_path():
    torch.manual_seed(0)
    state = train_resid_mlp_target(SMALL, torch.device("cpu"), progress=False)
    model = ResidMLP(SMALL)
    model.load_state_dict(state)
    generator = torch.Generator().manual_seed(1)
    x = sample_sparse_features(
        4096, 20, 0.05, "at_least_zero_active", VALUE_RANGE, generator, torch.device("cpu")
    )
    with torch.no_grad():
        trained = F.mse_loss(model(x), labels(x)).item()
    residual_only = F.mse_loss(x, labels(x)).item()  # what the embedding alone gives (≈)
    assert trained < 0.5 * residual_only


def dense_forward(model: ResidMLP, x: torch.Tensor) -> torch.Tensor:
    resid = x @ model.W_E
    for layer in model.layers:
        hidden = F.relu(F.linear(resid, layer.mlp_in.weight, layer.mlp_in.bias))
        resid = resid + F.linear(hidden, layer.mlp_out.weight, layer.mlp_out.bias)
    return resid @ model.W_U


def test_factored_residual_stream_computes_the_dense_forward_and_its_gradients():
    torch.manual_seed(0)
    model = ResidMLP(SMALL.model_copy(update={"in_bias": True, "out_bias": True}))
    for layer in model.layers:
        torch.nn.init.normal_(layer.mlp_in.bias)
        torch.nn.init.normal_(layer.mlp_out.bias)
    x = torch.randn(40, 20) * (torch.rand(40, 20) < 0.1)
    x[:3] = 0.0  # rows with no active feature
    x[3] = torch.randn(20)  # a dense row
    factored_x, dense_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    factored, dense = model(factored_x), dense_forward(model, dense_x)
    torch.testing.assert_close(factored, dense)
    factored.square().sum().backward()
    dense.square().sum().backward()
    torch.testing.assert_close(factored_x.grad, dense_x.grad)
    assert (factored_x.grad[:3] != 0).all()  # zero entries get their gradient too
    # The modules still take plain tensors.
    layer = model.layers[0]
    resid = x @ model.W_E
    torch.testing.assert_close(layer.mlp_in(resid), F.linear(resid, layer.mlp_in.weight, layer.mlp_in.bias))
