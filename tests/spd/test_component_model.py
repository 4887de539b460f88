import pytest
import torch
from torch import nn

from spd.component_model import ComponentModel, ModuleMask, nonzero_row_mask
from spd.components import EmbeddingComponents
from spd.identity_insertion import insert_identity_operations
from spd.module_patterns import resolve_module_patterns


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, ids):
        return self.fc2(torch.relu(self.fc1(self.embed(ids))))


def build(module_to_c, use_delta=False, ci_fn_type="mlp", target=None):
    torch.manual_seed(0)
    target = target or TwoLayer()
    return ComponentModel(target, module_to_c, ci_fn_type, [4], "leaky_hard", use_delta)


def test_each_module_gets_its_own_c():
    model = build({"fc1": 4, "fc2": 8, "embed": 3})
    assert model.components_of("fc1").V.shape == (6, 4)
    assert model.components_of("fc1").U.shape == (4, 5)
    assert model.components_of("fc2").V.shape == (5, 8)
    assert isinstance(model.components_of("embed"), EmbeddingComponents)
    assert model.components_of("embed").V.shape == (11, 3)
    ids = torch.randint(0, 11, (7, 2))
    _, inputs = model.forward_caching_inputs(ids)
    ci = model.causal_importances(inputs)
    assert {p: tuple(v.shape) for p, v in ci.lower.items()} == {
        "fc1": (7, 2, 4), "fc2": (7, 2, 8), "embed": (7, 2, 3)
    }


@pytest.mark.parametrize("ci_fn_type", ["vector_mlp", "shared_mlp"])
def test_vector_ci_functions_give_c_outputs(ci_fn_type):
    model = build({"fc1": 4, "fc2": 8}, ci_fn_type=ci_fn_type)
    _, inputs = model.forward_caching_inputs(torch.randint(0, 11, (3,)))
    assert model.causal_importances(inputs).upper["fc2"].shape == (3, 8)


def test_init_makes_components_approximate_the_target():
    model = build({"fc1": 200})
    weight = model.target.fc1.weight
    # Each rank-one piece is scaled by its projection on W, so the sum lines up with W.
    cos = nn.functional.cosine_similarity(model.components_of("fc1").weight.flatten(), weight.flatten(), dim=0)
    assert cos.item() > 0.5


def exact_components(model, path):
    """Set V = I, U = Wᵀ so that the components sum to the target weight exactly."""
    comp = model.components_of(path)
    weight = model.target.get_submodule(path).weight
    with torch.no_grad():
        comp.V.copy_(torch.eye(weight.shape[1], comp.C))
        comp.U.copy_(weight.T)


def test_masked_forward_replaces_only_the_masked_module_and_restores():
    model = build({"fc1": 6, "fc2": 5})
    exact_components(model, "fc1")
    ids = torch.randint(0, 11, (9,))
    target_out = model(ids)
    ones = ModuleMask(mask=torch.ones(9, 6))
    assert torch.allclose(model(ids, masks={"fc1": ones}), target_out, atol=1e-6)
    zeros = ModuleMask(mask=torch.zeros(9, 6))
    zeroed = model(ids, masks={"fc1": zeros})
    expected = model.target.fc2(torch.relu(model.target.fc1.bias.expand(9, 5)))
    assert torch.allclose(zeroed, expected, atol=1e-6)
    assert torch.allclose(model(ids), target_out)  # hooks are inactive again


def test_only_the_first_masked_module_reuses_target_inner_acts():
    model = build({"fc1": 6, "fc2": 5})
    ids = torch.randint(0, 11, (9,))
    _, inputs = model.forward_caching_inputs(ids)
    ci = model.causal_importances(inputs)
    masks = {path: ModuleMask(mask=torch.rand(9, model.module_to_c[path])) for path in inputs}
    plain = model(ids, masks=masks)
    assert torch.allclose(model(ids, masks=masks, target_inner_acts=ci.inner_acts), plain)
    # fc2 reads fc1's masked output, not its target input: its target inner acts must go unused.
    wrong_fc2 = {"fc1": ci.inner_acts["fc1"], "fc2": ci.inner_acts["fc2"] + 1.0}
    assert torch.allclose(model(ids, masks=masks, target_inner_acts=wrong_fc2), plain)
    # Masked alone, fc2 is the first masked module and does read them.
    alone = {"fc2": masks["fc2"]}
    assert not torch.allclose(model(ids, masks=alone, target_inner_acts=wrong_fc2), model(ids, masks=alone))


class CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x))


def test_a_module_that_runs_twice_per_forward_is_rejected():
    model = build({"fc": 3}, target=CalledTwice())
    with pytest.raises(ValueError, match="'fc' runs more than once per forward"):
        model.forward_caching_inputs(torch.randn(2, 4))


def test_delta_component_restores_target_exactly():
    model = build({"fc2": 2}, use_delta=True)
    ids = torch.randint(0, 11, (4,))
    masks = {"fc2": ModuleMask(mask=torch.ones(4, 2), delta_mask=torch.ones(4))}
    with model.weight_deltas():
        out = model(ids, masks=masks)
    assert torch.allclose(out, model(ids), atol=1e-5)


def test_zero_input_rows_share_one_ci_evaluation_exactly():
    model = build({"fc2": 8})
    x = torch.randn(10, 5)
    x[::2] = 0.0
    x.requires_grad_(True)
    nonzero = model.nonzero_rows({"fc2": x})["fc2"]
    assert nonzero.tolist() == [1, 3, 5, 7, 9]
    inner_acts = model.components_of("fc2").inner_acts(x)
    shared = model._pre_sigmoid_ci("fc2", inner_acts, nonzero)
    direct = model.ci_fns["fc2"](inner_acts)
    assert torch.allclose(shared, direct, atol=1e-6)
    grads_shared = torch.autograd.grad(shared.square().sum(), list(model.ci_fns.parameters()))
    grads_direct = torch.autograd.grad(direct.square().sum(), list(model.ci_fns.parameters()))
    for a, b in zip(grads_shared, grads_direct):
        assert torch.allclose(a, b, atol=1e-5)


def test_identity_insertion_keeps_outputs_and_is_decomposable():
    target = TwoLayer()
    ids = torch.randint(0, 11, (5,))
    before = target(ids)
    inserted = insert_identity_operations(target, ["fc2"])
    assert inserted == ["fc2.pre_identity"]
    assert torch.allclose(target(ids), before)
    resolved = resolve_module_patterns(target, [("fc2.pre_identity", 3)])
    model = build({p: c for p, (_, c) in resolved.items()}, target=target)
    assert model.components_of("fc2.pre_identity").V.shape == (5, 3)


def test_identity_insertion_errors():
    with pytest.raises(ValueError, match="match no module"):
        insert_identity_operations(TwoLayer(), ["fc9"])
    with pytest.raises(ValueError, match="'embed', a Embedding"):
        insert_identity_operations(TwoLayer(), ["embed"])


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(5, 2, bias=False)
        self.linear2 = nn.Linear(2, 5)
        with torch.no_grad():
            self.linear2.weight.copy_(self.linear1.weight.T)

    def forward(self, x):
        return self.linear2(self.linear1(x))


def test_tied_modules_share_transposed_subcomponents():
    torch.manual_seed(0)
    model = ComponentModel(Tied(), {"linear1": 4, "linear2": 4}, "mlp", [4], "leaky_hard", False,
                           tied_modules=[("linear1", "linear2")])
    assert torch.equal(model.components_of("linear2").V, model.components_of("linear1").U.T)
    assert torch.allclose(model.components_of("linear2").weight, model.components_of("linear1").weight.T)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("components")]
    assert trainable == ["components.linear1.V", "components.linear1.U"]
    masks = {"linear2": ModuleMask(mask=torch.ones(3, 4))}
    model(torch.rand(3, 5), masks=masks).sum().backward()
    assert model.components_of("linear1").V.grad is not None  # linear2's loss trains linear1's V


def test_tied_modules_with_different_c_stay_untied(caplog):
    model = ComponentModel(Tied(), {"linear1": 4, "linear2": 6}, "mlp", [4], "leaky_hard", False,
                           tied_modules=[("linear1", "linear2")])
    assert model.components_of("linear2").V.shape == (2, 6)
    assert "'linear1' (C=4) and 'linear2' (C=6) have different C" in caplog.text


def test_nonzero_row_mask_counts_any_entry_but_zeros():
    rows = torch.tensor([[0.0, 0.0], [0.0, -0.0], [0.0, 1e-30], [-2.0, 0.0], [float("nan"), 0.0]])
    assert nonzero_row_mask(rows).tolist() == [False, False, True, True, True]
