"""Science: SPD decomposes resid_mlp1 (100 ReLU features computed by 50 neurons) as in the paper
(and, in a test not yet run to the end here, resid_mlp2 and resid_mlp3).

Success (SPD paper, section 4.2): layers.0.mlp_in has 100 alive components, one per feature
(target-CI error 0: each feature has its own component, CI >= 0.9 on it and <= 0.1 elsewhere), and
layers.0.mlp_out has the dense pattern of 50 components that all co-activate.
"""

import pytest

from spd.config_loading import load_config
from spd.run import run_decomposition

SCHEDULE = ["eval_freq=10000", "image_freq=null"]
"""The registry config's own schedule (the research code's: 30k steps at constant lr), about 30 min
on 2 CPU threads (both seeds side by side on one thread each: 52 min). Both seeds reach target-CI
error 0 by step 20k (3 at 10k). A 10k-step cosine schedule was not enough: with seed 0 it left 7
of the 100 features without a component of their own."""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_resid_mlp1_decomposes_one_component_per_feature(seed, tmp_path):
    config = load_config("resid_mlp1", [*SCHEDULE, f"seed={seed}"])
    summary = run_decomposition(config, tmp_path, progress=False)
    mlp_in, mlp_out = summary.modules["layers.0.mlp_in"], summary.modules["layers.0.mlp_out"]
    assert mlp_in.alive == 100, mlp_in
    assert mlp_in.target_ci_error == 0, mlp_in
    assert mlp_out.target_ci_error == 0, mlp_out


@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "n_layers"), [("resid_mlp2", 2), ("resid_mlp3", 3)])
def test_deeper_resid_mlps_decompose_one_component_per_feature_in_every_layer(
    experiment, n_layers, tmp_path
):
    """The paper's answer for 2 and 3 layers: in every layer, mlp_in has one component per feature
    (100; 102 for resid_mlp3) and mlp_out the dense pattern of d_mlp co-activating components
    (25; 17), both at target-CI error 0. Not yet run to the end on this project's machines: the
    registry schedules (50k and 100k steps) take about 4 h and a day and a half on 2 CPU threads;
    run on a GPU (device auto). The paper notes that resid_mlp3 is seed-sensitive."""
    config = load_config(experiment, SCHEDULE)
    summary = run_decomposition(config, tmp_path, progress=False)
    n_features = config.task_config.target.n_features
    for layer in range(n_layers):
        mlp_in = summary.modules[f"layers.{layer}.mlp_in"]
        mlp_out = summary.modules[f"layers.{layer}.mlp_out"]
        assert mlp_in.alive == n_features, (layer, mlp_in)
        assert mlp_in.target_ci_error == 0, (layer, mlp_in)
        assert mlp_out.target_ci_error == 0, (layer, mlp_out)
