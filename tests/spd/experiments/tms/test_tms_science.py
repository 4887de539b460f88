"""Science: SPD decomposes the toy models of superposition into one component per feature in each
module (tms_5-2 here; tms_5-2-id, tms_40-10 and tms_40-10-id in the slow tests, with the criteria
their configs state).

Success (the paper's Table 1): exactly 5 alive components in linear1 and in linear2, target-CI
error 0 (each feature has its own component, CI ≥ 0.9 on it and ≤ 0.1 elsewhere), MMCS > 0.99
and ML2R in [0.95, 1.05]. The default suite runs shorter schedules that reach it (seed 0, and
different C per module; tms_5-2-id with its identity module); more seeds and the full registry
configs are slow tests. tms_40-10 has no short version in the default suite: measured at one
thread, its 200-component CI functions take about 5 minutes for 2,000 steps at batch 1,024
(and then still have an error), and shrunken budgets (C = 60, batch 512, 2,000 steps, several
learning rates and importance coefficients) stay far from the answer (errors of 78-380).
"""

import pytest

from spd.config_loading import load_config
from spd.run import run_decomposition
from spd.run_summary import RunSummary

SHORT_SCHEDULE = ["steps=1500", "lr=5e-3", "batch_size=2048", "eval_freq=1000", "image_freq=null",
                  "save_freq=null"]  # fmt: skip
"""Seeds 0-2 of tms_5-2 (compiled step) and seed 0 of tms_5-2-id (eager) reach the answer with it."""


def assert_decomposed(summary: RunSummary, n_features: int, modules: list[str]) -> None:
    for module in modules:
        result = summary.modules[module]
        assert result.alive == n_features, (module, result)
        assert result.target_ci_error == 0, (module, result)
        assert result.mmcs > 0.99, (module, result)
        assert 0.95 <= result.ml2r <= 1.05, (module, result)


@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_short_tms_5_2_decomposes(seed, tmp_path):
    config = load_config("tms_5-2", [*SHORT_SCHEDULE, f"seed={seed}"])
    summary = run_decomposition(config, tmp_path, progress=False)
    assert_decomposed(summary, 5, ["linear1", "linear2"])


def test_short_tms_5_2_decomposes_with_different_c_per_module(tmp_path):
    # Different C per module cannot share subcomponents, so this one is untied. Eager: the
    # untied graph would be a second cold compile (about 25 s of CI), and the compiled step
    # equals eager (test_compile_step).
    # 3,000 steps at the registry's lr: at 1,500 steps and lr 5e-3 linear1 (C = 10, untied)
    # kept only 4 components (error 3).
    config = load_config(
        "tms_5-2",
        [
            "steps=3000",
            "batch_size=2048",
            "eval_freq=1000",
            "image_freq=null",
            "save_freq=null",
            "compile_step=false",
            "tied_components=[]",
            "target_module_patterns=[[linear1, 10], [linear2, 30]]",
        ],
    )
    summary = run_decomposition(config, tmp_path, progress=False)
    assert (summary.modules["linear1"].C, summary.modules["linear2"].C) == (10, 30)
    assert_decomposed(summary, 5, ["linear1", "linear2"])


def test_short_tms_5_2_id_decomposes_with_a_dense_identity(tmp_path):
    # Eager: a compiled step would pay a cold compile of a third graph in a fresh checkout.
    # Seed 0 reaches the answer with SHORT_SCHEDULE (so does seed 2; seed 1 keeps a 6th
    # component alive in linear2, error 0 everywhere), as at 2,000 steps and the registry's lr.
    config = load_config("tms_5-2-id", [*SHORT_SCHEDULE, "compile_step=false", "seed=0"])
    summary = run_decomposition(config, tmp_path, progress=False)
    assert_decomposed(summary, 5, ["linear1", "linear2"])
    identity = summary.modules["hidden_layers.0"]
    assert (identity.alive, identity.target_ci_error) == (2, 0), identity


@pytest.mark.slow
def test_default_tms_5_2_decomposes(tmp_path):
    summary = run_decomposition(load_config("tms_5-2"), tmp_path, progress=False)
    assert_decomposed(summary, 5, ["linear1", "linear2"])


@pytest.mark.slow
def test_default_tms_5_2_id_decomposes(tmp_path):
    summary = run_decomposition(load_config("tms_5-2-id"), tmp_path, progress=False)
    assert_decomposed(summary, 5, ["linear1", "linear2"])
    assert summary.modules["hidden_layers.0"].alive == 2
    assert summary.modules["hidden_layers.0"].target_ci_error == 0


@pytest.mark.slow
def test_default_tms_40_10_decomposes(tmp_path):
    summary = run_decomposition(load_config("tms_40-10"), tmp_path, progress=False)
    for module in ["linear1", "linear2"]:
        result = summary.modules[module]
        assert result.target_ci_error == 0, (module, result)
        assert result.mmcs >= 0.99, (module, result)
        assert 0.95 <= result.ml2r <= 1.05, (module, result)
    # Near-threshold leftovers may stay alive on the training distribution (tms_40-10.yaml):
    # seed 0 ended with 54-55 / 40, seed 1 with 47 / 43, seed 2 with 48 / 40.
    for module in ["linear1", "linear2"]:
        assert summary.modules[module].alive >= 40, summary.modules[module]


@pytest.mark.slow
def test_default_tms_40_10_id_decomposes(tmp_path):
    summary = run_decomposition(load_config("tms_40-10-id"), tmp_path, progress=False)
    for module in ["linear1", "linear2", "hidden_layers.0"]:
        assert summary.modules[module].target_ci_error == 0, (module, summary.modules[module])
    for module in ["linear1", "linear2"]:
        result = summary.modules[module]
        assert result.mmcs >= 0.99, (module, result)
        assert 0.95 <= result.ml2r <= 1.05, (module, result)
        assert result.alive >= 40, (module, result)
    # The rank-10 identity needs at least 10 components (tms_40-10-id.yaml).
    assert summary.modules["hidden_layers.0"].alive >= 10, summary.modules["hidden_layers.0"]
