"""A small residual MLP end to end: target training, decomposition, evaluation, run directory."""

import json
import math

from spd.config import Config
from spd.config_loading import load_config
from spd.registry import EXPERIMENTS
from spd.run import run_decomposition
from spd.run_dir import RunDir
from tests.spd.experiments.resid_mlp.conftest import small_resid_mlp_config

MODULES = ["layers.0.mlp_in", "layers.0.mlp_out", "layers.1.mlp_in", "layers.1.mlp_out"]


def logged(run: RunDir, key: str) -> list[float]:
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    return [r[key] for r in records if key in r]


def test_small_resid_mlp_decomposes_end_to_end(tmp_path):
    config = Config.model_validate(small_resid_mlp_config())
    summary = run_decomposition(config, tmp_path, progress=False)
    run = RunDir(tmp_path)
    assert summary.status == "completed"
    assert json.loads(run.modules.read_text()) == {
        path: {"pattern": f"layers.*.{path.split('.')[-1]}", "C": 30 if path.endswith("in") else 12}
        for path in MODULES
    }
    for name in (
        "loss/total",
        "loss/faithfulness",
        "loss/stochastic_recon",
        "loss/stochastic_recon_layerwise",
    ):
        values = logged(run, name)
        assert len(values) == 12 and all(math.isfinite(v) for v in values), name
        first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
        assert last < first, (name, values)
    metrics = summary.metrics
    for path in MODULES:
        assert 0 <= metrics[f"alive/{path}"] <= (30 if path.endswith("in") else 12)
        assert f"target_ci_error/{path}" in metrics and f"ci_l0/{path}" in metrics
    assert metrics["target_ci_error/total"] == sum(metrics[f"target_ci_error/{p}"] for p in MODULES)
    assert set(summary.figures) == {
        "figures/ci_per_feature.png",
        "figures/component_norms.png",
        "figures/loss_curves.png",
    }
    for path in (run.config, run.model, run.summary, run.log, run.checkpoint):
        assert path.exists(), path


def test_registry_configs_have_per_module_c_and_the_known_solutions():
    expected = {  # experiment: (n_features, n_layers, d_mlp = k of the dense mlp_out pattern)
        "resid_mlp1": (100, 1, 50),
        "resid_mlp2": (100, 2, 25),
        "resid_mlp3": (102, 3, 17),
    }
    for name, (n_features, n_layers, d_mlp) in expected.items():
        config = load_config(name)
        target = config.task_config.target
        assert (target.n_features, target.n_layers, target.d_mlp) == (n_features, n_layers, d_mlp)
        c = dict(config.target_module_patterns)
        assert c["layers.*.mlp_in"] >= n_features and c["layers.*.mlp_out"] >= d_mlp
        assert c["layers.*.mlp_in"] > c["layers.*.mlp_out"]
        patterns = config.target_ci_patterns
        assert [(p.pattern, p.n_features) for p in patterns.identity] == [
            ("layers.*.mlp_in", n_features)
        ]
        assert [(p.pattern, p.k) for p in patterns.dense] == [("layers.*.mlp_out", d_mlp)]
        assert config.batch_size == 2048 and config.task_config.feature_probability == 0.01
        assert EXPERIMENTS[name].config_path.name == f"{name}.yaml"
