"""`compile_step: true` trains exactly like eager mode (same draws, same math, one graph)."""

import pytest
import torch

from spd.config import Config
from spd.config_loading import load_config
from spd.distributed import DataParallel
from spd.run import build_component_model
from spd.train import Trainer
from tests.spd.experiments.resid_mlp.conftest import small_resid_mlp_config


def tms_config(compile_step: bool) -> Config:
    # The registry config: its graph is the one the TMS science tests compile (and cache).
    return load_config("tms_5-2", ["batch_size=512", f"compile_step={compile_step}"])


def resid_mlp_config(compile_step: bool) -> Config:
    # Two layers, and two modules decomposed: the second layer's input depends on the first's
    # masked output, written into the factored residual stream (spd.low_rank). (All four
    # modules would double the cold compile, about 100 s at one thread, for no new path.)
    config = small_resid_mlp_config(compile_step=compile_step, compile=False)
    config["target_module_patterns"] = [["layers.0.mlp_out", 12], ["layers.1.mlp_in", 30]]
    return Config.model_validate(config)


def trained(config: Config, n_steps: int) -> tuple[list[dict[str, float]], Trainer]:
    model, task, _ = build_component_model(config, torch.device("cpu"), progress=False)
    trainer = Trainer(config, model, task, DataParallel(device=torch.device("cpu")))
    logged = []
    for step in range(n_steps):
        logged.append({name: float(value) for name, value in trainer.train_step(step).items()})
    return logged, trainer


@pytest.mark.parametrize("make_config", [tms_config, resid_mlp_config], ids=["tms", "resid_mlp"])
def test_compiled_step_matches_eager_steps_losses_and_parameters(make_config):
    eager_log, eager = trained(make_config(compile_step=False), n_steps=4)
    compiled_log, compiled = trained(make_config(compile_step=True), n_steps=4)
    # The sparse batches exercise row compaction and zero-row sharing inside the graph.
    for eager_terms, compiled_terms in zip(eager_log, compiled_log, strict=True):
        assert eager_terms.keys() == compiled_terms.keys()
        for name, value in eager_terms.items():
            torch.testing.assert_close(compiled_terms[name], value, rtol=1e-5, atol=1e-7, msg=name)
    for a, b in zip(eager.params, compiled.params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
