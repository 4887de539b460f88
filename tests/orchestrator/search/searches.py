"""Search files whose trials run in seconds (tms_5-2, 30 steps), for tests that run them."""

from pathlib import Path
from typing import Any

import yaml

from orchestrator.search.spec import SearchFile

SHORT_TRIAL: dict[str, Any] = {
    "compile_step": False,  # a compile would take longer than the run
    "steps": 30,
    "eval_freq": 10,
    "save_freq": 10,
    "log_freq": 10,
    "batch_size": 64,
    "n_eval_steps": 1,
    "image_freq": None,
    "faithfulness_warmup.steps": 20,
    "task_config.target.train_steps": 300,
}
"""Fixed values that make a tms_5-2 trial take a few seconds."""

CPU = {"device": "cpu"}


def c_search(**updates: Any) -> dict[str, Any]:
    """C and the minimality coefficient; minimise reconstruction and total C."""
    return {
        "experiment": "tms_5-2",
        "fixed": SHORT_TRIAL,
        "search": {
            # One C for both modules: tms_5-2 ties linear2's components to linear1's.
            "C": {"low": 2, "high": 12},
            "losses.importance_minimality.coeff": {"low": 1e-4, "high": 1e-2, "log": True},
        },
        "objectives": {"loss/stochastic_recon": "minimize", "C/total": "minimize"},
        "sampler": {"name": "nsgaii", "seed": 0},
    } | updates


def search_file(data: dict[str, Any]) -> SearchFile:
    return SearchFile.model_validate(data)


def write_search(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
