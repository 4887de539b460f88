"""`compile_step: true` trains exactly like eager mode (same draws, same math, one graph)."""

import torch

from spd.config_loading import load_config
from spd.run import build_component_model
from spd.train import Trainer


def trained(compile_step: bool, n_steps: int) -> tuple[list[dict[str, float]], Trainer]:
    # The registry config: its graph is the one the TMS science tests compile (and cache).
    config = load_config("tms_5-2", ["batch_size=512", f"compile_step={compile_step}"])
    model, task, _ = build_component_model(config, torch.device("cpu"))
    trainer = Trainer(config, model, task, torch.device("cpu"))
    logged = []
    for step in range(n_steps):
        logged.append({name: float(value) for name, value in trainer.train_step(step).items()})
    return logged, trainer


def test_compiled_step_matches_eager_steps_losses_and_parameters():
    eager_log, eager = trained(compile_step=False, n_steps=4)
    compiled_log, compiled = trained(compile_step=True, n_steps=4)
    # The sparse TMS batch exercises row compaction and zero-row sharing inside the graph.
    for eager_terms, compiled_terms in zip(eager_log, compiled_log, strict=True):
        assert eager_terms.keys() == compiled_terms.keys()
        for name, value in eager_terms.items():
            torch.testing.assert_close(compiled_terms[name], value, rtol=1e-5, atol=1e-7, msg=name)
    for a, b in zip(eager.params, compiled.params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
