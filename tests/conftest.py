"""Shared fixtures: small configs that train in seconds."""

from typing import Any

import pytest


def tms_config_dict(**overrides: Any) -> dict[str, Any]:
    """A tms_5-2 config dict with a short schedule; keyword overrides replace top-level keys."""
    config: dict[str, Any] = {
        "task_config": {
            "task_name": "tms",
            "feature_probability": 0.05,
            "target": {"n_features": 5, "n_hidden": 2, "train_steps": 2000},
        },
        "target_module_patterns": [["linear1", 8], ["linear2", 8]],
        "target_ci_patterns": {"identity": [{"pattern": "linear*", "n_features": 5}]},
        "losses": {
            "faithfulness": {"coeff": 1.0},
            "importance_minimality": {"coeff": 3e-3, "pnorm": 1.0},
            "stochastic_recon": {"coeff": 1.0},
            "stochastic_recon_layerwise": {"coeff": 1.0},
        },
        "steps": 20,
        "batch_size": 256,
        "lr": 1e-3,
        "eval_freq": 10,
        "log_freq": 5,
        "save_freq": 5,
        "device": "cpu",
    }
    config.update(overrides)
    return config


@pytest.fixture
def tms_config() -> dict[str, Any]:
    return tms_config_dict()


def xdist_group(item: pytest.Item) -> str | None:
    """The pytest-xdist worker group of a test: the SLURM tests share the cluster and wait on
    its jobs, so they stay together, one at a time as in a serial run (test_install's SLURM
    tests included, with the wheel its module builds once); the report tests share one sweep
    (finished_sweep), which each worker would otherwise run again."""
    fixtures = getattr(item, "fixturenames", ())
    if "slurm_cluster" in fixtures or item.path.name == "test_install.py":
        return "slurm"
    if "finished_sweep" in fixtures:
        return "report_sweep"
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    """`make test` runs two pytest-xdist workers (--dist loadgroup, scripts/run_tests.sh): each
    group runs in one worker, the other tests wherever a worker is free. (Marked as each test is
    collected: xdist reads the groups in its own pytest_collection_modifyitems.)"""
    group = xdist_group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))
