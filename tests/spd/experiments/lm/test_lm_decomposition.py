"""Short SPD runs of tiny Llama and GPT-2 models loaded from local directories."""

import json
import math

import pytest
import torch

from spd.config import Config
from spd.metric_names import metric_name_problem
from spd.run import run_decomposition
from spd.run_dir import RunDir
from spd.train import Trainer

PATTERNS = {
    "llama": [
        ["model.layers.*.mlp.*", 12],
        ["model.layers.*.self_attn.*_proj", 6],
        ["model.embed_tokens", 8],
    ],
    "gpt2": [["transformer.h.*.mlp.c_*", 12], ["transformer.h.*.attn.c_*", 6], ["transformer.wte", 8]],
}


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_short_decomposition_has_finite_metrics_and_learns(architecture, lm_config, tmp_path):
    config = Config.model_validate(lm_config(architecture, PATTERNS[architecture]))
    summary = run_decomposition(config, tmp_path, progress=False)

    n_modules = {"llama": 8, "gpt2": 5}[architecture]
    assert len(summary.modules) == n_modules
    metrics = summary.metrics
    assert all(math.isfinite(value) for value in metrics.values())
    for variant in ("ci_masked", "stochastic_masked", "unmasked", "zero_masked"):
        assert metrics[f"kl/{variant}"] >= 0
    assert metrics["kl/zero_masked"] > metrics["kl/unmasked"]
    assert metrics["ce/target"] > 0
    assert all(metric_name_problem(name, config, summary.modules) is None for name in metrics)
    for module in summary.modules.values():
        assert 0 <= module.ci_l0 <= module.C and 0 <= module.alive <= module.C

    rows = [json.loads(line) for line in RunDir(tmp_path).metrics.read_text().splitlines()]
    train = [row["loss/total"] for row in rows if "loss/total" in row]
    assert len(train) == 40
    assert sum(train[-5:]) < sum(train[:5])
    evals = {row["step"]: row for row in rows if "eval/kl/stochastic_masked" in row}
    assert evals[40]["eval/kl/stochastic_masked"] < evals[0]["eval/kl/stochastic_masked"]


def test_streamed_run_resumes_exactly_where_it_was_killed(lm_config, corpus_files, tmp_path, monkeypatch):
    base = lm_config("llama", [["model.layers.*.mlp.down_proj", 6]], steps=12, save_freq=4,
                     eval_freq=6, losses={"importance_minimality": {"coeff": 1e-3},
                                          "stochastic_recon": {"coeff": 1.0}})
    base["task_config"]["dataset"] |= {"streaming": True, "shuffle_buffer": 16}
    config = Config.model_validate(base)
    run_decomposition(config, tmp_path / "whole", progress=False)

    real_step = Trainer.train_step

    def killed_at_10(self, step):
        if step == 10:
            raise KeyboardInterrupt("killed")
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "train_step", killed_at_10)
    with pytest.raises(KeyboardInterrupt):
        run_decomposition(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    run_decomposition(config, tmp_path / "resumed", progress=False)

    whole = torch.load(RunDir(tmp_path / "whole").model, weights_only=True)
    resumed = torch.load(RunDir(tmp_path / "resumed").model, weights_only=True)
    for key, value in whole["components"].items():
        assert torch.equal(value, resumed["components"][key]), key
    assert RunDir(tmp_path / "whole").metrics.read_text() == RunDir(tmp_path / "resumed").metrics.read_text()
