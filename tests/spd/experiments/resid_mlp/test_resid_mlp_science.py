"""Science: SPD decomposes resid_mlp1 (100 ReLU features computed by 50 neurons) as in the paper.

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
