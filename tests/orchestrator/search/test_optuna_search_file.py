"""The search file is checked before anything is submitted."""

from pathlib import Path

import optuna
import pytest

from orchestrator.search.spec import (
    FloatRange,
    IntRange,
    SearchFileError,
    check_search,
    load_search_file,
)
from orchestrator.search.study import build_pruner, build_sampler
from orchestrator.sweep.params import ConfigKey, PatternC
from tests.orchestrator.search.searches import CPU, c_search, search_file, write_search

REPO_SWEEPS = Path(__file__).resolve().parents[3] / "sweeps"


def test_search_space_is_parsed_per_pattern_and_key() -> None:
    data = c_search()
    data["search"]["C"] = {"linear1": {"low": 2, "high": 12}, "linear2": {"low": 3, "high": 9}}
    space = search_file(data).space
    assert space[PatternC("target_module_patterns", "linear1")] == IntRange(low=2, high=12)
    assert space[PatternC("target_module_patterns", "linear2")] == IntRange(low=3, high=9)
    coeff = space[ConfigKey("losses.importance_minimality.coeff")]
    assert coeff == FloatRange(low=1e-4, high=1e-2, log=True)


def test_valid_search_passes_the_corner_check() -> None:
    check_search("tms_5-2", search_file(c_search()), CPU)


def test_unknown_pattern_is_rejected_listing_the_experiments_patterns() -> None:
    data = c_search()
    data["search"]["C"] = {"linear9": {"low": 2, "high": 5}}
    with pytest.raises(SearchFileError, match="linear9.*the config has: linear1, linear2"):
        check_search("tms_5-2", search_file(data), CPU)


def test_range_that_makes_an_invalid_config_is_rejected() -> None:
    data = c_search()
    data["search"]["C"] = {"linear1": {"low": 0, "high": 5}}  # C must be positive
    with pytest.raises(SearchFileError, match="C\\[linear1\\]=0"):
        check_search("tms_5-2", search_file(data), CPU)


@pytest.mark.parametrize(
    ("objectives", "constraint", "message"),
    [
        ({"loss/stochastic_recn": "minimize"}, None, (
            "objectives: 'loss/stochastic_recn'.*"
            "loss/ has: importance_minimality, stochastic_recon, stochastic_recon_layerwise, total"
        )),
        ({"C/linear3": "minimize"}, None, "objectives: 'C/linear3'.*C/ has: linear1, linear2, total"),
        ({"mmcs/total": "maximize"}, None, "'mmcs/total'.*mmcs/ has: linear1, linear2$"),
        ({"recon": "minimize"}, None, "'recon' is not a metric of this run; metric families: loss"),
        ({"C/total": "minimize"}, {"metric": "los/stochastic_recon", "max": 0.1},
         "constraint.metric: 'los/stochastic_recon'"),
    ],
)
def test_objectives_must_be_metrics_of_the_runs(
    objectives: dict, constraint: dict | None, message: str
) -> None:
    data = c_search(objectives=objectives, sampler={"name": "tpe"})
    if constraint is not None:
        data["constraint"] = constraint
    with pytest.raises(SearchFileError, match=f"(?s)nothing was submitted.*{message}"):
        check_search("tms_5-2", search_file(data), CPU)


def test_every_metric_family_of_a_toy_run_is_accepted() -> None:
    names = ["loss/total", "loss/stochastic_recon_layerwise", "alive/linear1", "ci_l0/total", "ml2r/linear2",
             "target_ci_error/total", "target_ci_error_tol0.2/linear1"]  # fmt: skip
    check_search("tms_5-2", search_file(c_search(objectives=dict.fromkeys(names, "minimize"),
                                                 sampler={"name": "nsgaii"})), CPU)  # fmt: skip


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"C": {"linear1": {"low": 9, "high": 2}}}, "low \\(9\\) is above high \\(2\\)"),
        ({"C": {"linear1": {"low": 0.5, "high": 2}}}, "C takes an int range"),
        ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, "log-scale range needs low > 0"),
        ({"lr": {"low": 0.1, "hihg": 1.0}}, "hihg"),
        ({"lr": 0.1}, "give \\{low: , high: \\}"),
    ],
)
def test_bad_range_is_rejected_on_load(tmp_path: Path, search: dict, message: str) -> None:
    path = write_search(tmp_path / "s.yaml", c_search(search=search))
    with pytest.raises(SearchFileError, match=message):
        load_search_file(path)


def test_pruning_a_multi_objective_search_is_rejected(tmp_path: Path) -> None:
    path = write_search(tmp_path / "s.yaml", c_search(pruner={"name": "median"}))
    with pytest.raises(SearchFileError, match="pruning needs a single objective"):
        load_search_file(path)


def test_grid_sampler_needs_finite_ranges(tmp_path: Path) -> None:
    path = write_search(tmp_path / "s.yaml", c_search(sampler={"name": "grid"}))
    with pytest.raises(SearchFileError, match="grid sampler needs a step"):
        load_search_file(path)


def test_repository_search_files_are_valid() -> None:
    for name in ("optuna_tms_5-2", "optuna_resid_mlp3"):
        search = load_search_file(REPO_SWEEPS / f"{name}.yaml")
        assert search.experiment is not None
        check_search(search.experiment, search, CPU)


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "grid", "nsgaii"])
def test_every_sampler_builds(name: str) -> None:
    data = c_search(
        search={"C": {"low": 2, "high": 4}, "lr": {"choices": [0.001, 0.003]}},
        objectives={"loss/stochastic_recon": "minimize"},
        sampler={"name": name, "seed": 1},
        pruner={"name": "hyperband"},
    )
    search = search_file(data)
    study = optuna.create_study(
        sampler=build_sampler(search), pruner=build_pruner(search, 30), directions=search.directions
    )
    trial = study.ask()
    assert 2 <= search.space[PatternC("target_module_patterns", None)].suggest(trial, "C") <= 4
