"""`compile_step: true` trains exactly like eager mode (same draws, same math, one graph)."""

import torch

from spd.config import Config
from spd.run import build_component_model
from spd.train import Trainer
from tests.conftest import tms_config_dict


def trained(compile_step: bool, n_steps: int) -> tuple[list[dict[str, float]], Trainer]:
    config = Config.model_validate(
        tms_config_dict(
            compile_step=compile_step,
            use_delta_component=True,
            batch_size=512,
            losses={
                "importance_minimality": {
                    "coeff": 3e-3, "pnorm": 2.0, "p_anneal_start_frac": 0.0, "p_anneal_final_p": 1.0
                },
                "stochastic_recon": {"coeff": 1.0},
                "stochastic_recon_layerwise": {"coeff": 1.0},
                "ci_masked_recon": {"coeff": 1.0},
            },
        )
    )
    model, task, _ = build_component_model(config, torch.device("cpu"))
    trainer = Trainer(config, model, task, torch.device("cpu"))
    logged = []
    for step in range(n_steps):
        logged.append({name: float(value) for name, value in trainer.train_step(step).items()})
    return logged, trainer


def test_compiled_step_matches_eager_steps_losses_and_parameters():
    eager_log, eager = trained(compile_step=False, n_steps=4)
    compiled_log, compiled = trained(compile_step=True, n_steps=4)
    # The sparse TMS batch exercises row compaction and zero-row sharing inside the graph, and
    # the annealed p changes every step without recompiling.
    assert eager_log[0]["loss/importance_minimality"] != eager_log[-1]["loss/importance_minimality"]
    for eager_terms, compiled_terms in zip(eager_log, compiled_log, strict=True):
        assert eager_terms.keys() == compiled_terms.keys()
        for name, value in eager_terms.items():
            torch.testing.assert_close(compiled_terms[name], value, rtol=1e-5, atol=1e-7, msg=name)
    for a, b in zip(eager.params, compiled.params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
