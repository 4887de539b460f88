import pytest
import torch

from spd.component_model import ComponentModel
from spd.config import Config
from spd.experiments.tms.model import TMSModel
from spd.experiments.tms.task_config import TMSTargetConfig
from spd.losses import compute_losses, draw_loss_noise
from spd.step_batch import compact_zero_rows, run_target, weighted_row_mean
from tests.conftest import tms_config_dict


def test_weighted_row_mean_counts_rows():
    values = torch.tensor([[1.0, 3.0], [5.0, 5.0]])
    assert weighted_row_mean(values, None).item() == pytest.approx(3.5)
    assert weighted_row_mean(values, torch.tensor([1.0, 3.0])).item() == pytest.approx((2 + 15) / 4)


def test_compaction_keeps_nonzero_rows_and_one_weighted_zero_row():
    batch = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    kept, weights = compact_zero_rows(batch)
    assert kept.tolist() == [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]
    assert weights.tolist() == [1.0, 1.0, 3.0]
    dense = torch.ones(3, 2)
    assert compact_zero_rows(dense)[1] is None


def test_zero_rows_are_kept_when_a_bias_reaches_a_decomposed_module():
    target = TMSModel(TMSTargetConfig(n_features=5, n_hidden=2, n_hidden_layers=1), tied=False)
    batch = torch.zeros(8, 5)
    batch[0, 1] = 1.0
    model = ComponentModel(target, {"linear1": 4, "linear2": 4}, "mlp", [8], "leaky_hard", False)
    assert run_target(model, batch, True).batch.shape[0] == 2  # compacted: zero stays zero
    target.hidden_layers[0].bias = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    assert run_target(model, batch, True).batch.shape[0] == 8  # linear2 now sees the bias


def test_compacted_losses_and_gradients_equal_the_full_batch():
    torch.manual_seed(0)
    config = Config.model_validate(
        tms_config_dict(
            losses={
                "faithfulness": {"coeff": 1.0},
                "importance_minimality": {"coeff": 0.1, "pnorm": 1.0},
                "ci_masked_recon": {"coeff": 1.0},
            }
        )
    )
    target = TMSModel(TMSTargetConfig(n_features=5, n_hidden=2), tied=False)
    model = ComponentModel(target, {"linear1": 6, "linear2": 4}, "mlp", [8], "leaky_hard", False)
    batch = torch.rand(64, 5) * (torch.rand(64, 5) < 0.1)
    generator = torch.Generator()

    def losses_and_grads(independent_rows):
        data = run_target(model, batch, independent_rows)
        ci = model.causal_importances(data.inputs, data.nonzero_rows)
        noise = draw_loss_noise(model, data, config, generator)  # ci_masked_recon: no draws
        total, terms = compute_losses(model, data, ci, config, 1.0, noise)
        grads = torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad])
        return terms, grads, data

    full_terms, full_grads, full = losses_and_grads(False)
    compact_terms, compact_grads, compact = losses_and_grads(True)
    assert compact.batch.shape[0] < full.batch.shape[0]
    for name in full_terms:
        assert compact_terms[name].item() == pytest.approx(full_terms[name].item(), rel=1e-5), name
    for a, b in zip(full_grads, compact_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
