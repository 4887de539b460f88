"""Sweeps whose jobs run in seconds, for tests that really run them."""

from pathlib import Path
from typing import Any

import yaml

SHORT_RUN: dict[str, Any] = {
    "compile_step": False,  # a compile would take longer than the run
    "steps": 50,
    "eval_freq": 50,
    "save_freq": 25,
    "log_freq": 25,
    "batch_size": 64,
    "n_eval_steps": 1,
    "image_freq": None,
    "task_config.target.train_steps": 300,
}
"""Fixed overrides that make a tms_5-2 job take seconds (its target trains in ~1 s)."""

FAILING_LR = {"lr": {"values": [1e-3, 1e6]}}
"""A swept lr whose second job diverges within its first steps: a job that passes validation
and fails while it runs (a config error would stop the whole sweep before it is submitted)."""
DIVERGED = "spd.divergence.TrainingDiverged: training diverged at step"
"""How that job's error starts."""

SHORT_ID_TARGET: dict[str, Any] = {
    "task_config.target.train_steps": 1000,
    "task_config.target.train_batch_size": 256,
    "task_config.target.train_seed": 4,
}
"""A tms_5-2-id target that trains quickly: with seed 4, 1000 steps represent every feature."""


def write_sweep_file(path: Path, sections: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path
