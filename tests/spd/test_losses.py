import math

import pytest
import torch
from torch import nn

from spd.component_model import ComponentModel
from spd.config import ImportanceMinimalityLoss
from spd.losses import annealed_p, faithfulness_loss, importance_minimality_loss, output_distance


def model_with_ones(n_layers: int) -> ComponentModel:
    target = nn.Sequential(*[nn.Linear(2, 2, bias=False) for _ in range(n_layers)])
    for layer in target:
        nn.init.ones_(layer.weight)
    model = ComponentModel(target, {str(i): 3 for i in range(n_layers)}, "mlp", [4], "leaky_hard", False)
    with torch.no_grad():
        for i in range(n_layers):
            model.components_of(str(i)).V.fill_(1.0)  # V (2, 3), U (3, 2): UV sums to 3 everywhere
            model.components_of(str(i)).U.fill_(1.0)
    return model


def test_faithfulness_one_layer_hand_computed():
    # (1 - 3)^2 over 4 weights = 16, divided by the 4 decomposed weights
    assert faithfulness_loss(model_with_ones(1)).item() == pytest.approx(16 / 4)


def test_faithfulness_two_layers_divides_by_all_decomposed_weights():
    assert faithfulness_loss(model_with_ones(2)).item() == pytest.approx(32 / 8)


def test_importance_minimality_hand_computed():
    ci = {"l1": torch.tensor([[1.0, 2.0, 3.0]]), "l2": torch.tensor([[0.5, 1.5]])}
    assert importance_minimality_loss(ci, p=1.0, eps=0.0).item() == pytest.approx(8.0)
    assert importance_minimality_loss({"l": torch.tensor([[2.0, 3.0]])}, 2.0, 0.0).item() == pytest.approx(13.0)


def test_importance_minimality_averages_over_batch_and_positions():
    ci = {"l": torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]])}
    assert importance_minimality_loss(ci, 1.0, 0.0).item() == pytest.approx(3 / 4)


@pytest.mark.parametrize(
    "step, expected_p", [(25, 1.5), (90, 1.0), (0, 1.0)]
)
def test_p_annealing(step, expected_p):
    loss = ImportanceMinimalityLoss(
        coeff=1, pnorm=2.0, p_anneal_start_frac=0.0, p_anneal_final_p=1.0, p_anneal_end_frac=0.5
    )
    if step == 0:
        expected_p = 2.0  # frac 0 is the start of the window: p is still pnorm
    assert annealed_p(loss, step, 100) == pytest.approx(expected_p)
    value = importance_minimality_loss({"l": torch.tensor([[2.0]])}, annealed_p(loss, step, 100), 0.0)
    assert value.item() == pytest.approx(2.0**expected_p)


def test_p_before_window_and_without_final_p():
    late = ImportanceMinimalityLoss(coeff=1, pnorm=2.0, p_anneal_start_frac=0.5, p_anneal_final_p=1.0)
    assert annealed_p(late, 10, 100) == 2.0
    never = ImportanceMinimalityLoss(coeff=1, pnorm=2.0, p_anneal_start_frac=0.0)
    assert annealed_p(never, 90, 100) == 2.0


def test_mse_and_kl_distances():
    out, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert output_distance(out, target, "mse").item() == pytest.approx(2.5)
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    assert output_distance(logits, logits, "kl").item() == pytest.approx(0.0, abs=1e-7)
    # KL(p || q) with p = (1/4, 3/4), q = (1/2, 1/2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert output_distance(torch.zeros(1, 1, 2), logits, "kl").item() == pytest.approx(expected)
