"""The layout of a run directory: the one place that names its files.

A run directory holds everything about one decomposition; the orchestrator and reports read it:
    config.yaml       the resolved config that ran
    modules.json      module -> {pattern, C}, the per-module C resolution
    metrics.jsonl     one JSON object per logged step (losses, eval metrics)
    checkpoint.pt     the latest training state, for --resume (written atomically)
    model.pt          the final components and CI functions
    figures/          PNG figures
    summary.json      final metrics per module; present only once the run completed
    run.log           the run's log
"""

import os
from dataclasses import dataclass
from pathlib import Path


def runs_root() -> Path:
    return Path(os.environ.get("SPD_RUNS_DIR", "runs"))


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def modules(self) -> Path:
        return self.path / "modules.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def model(self) -> Path:
        return self.path / "model.pt"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def log(self) -> Path:
        return self.path / "run.log"

    def is_complete(self) -> bool:
        return self.summary.exists()
