"""The layout of a run directory: the one place that names its files.

A run directory holds everything about one decomposition; the orchestrator and reports read it:
    config.yaml       the resolved config that ran
    fingerprint.json  the fingerprint of its result-relevant fields (spd.config_fingerprint)
    modules.json      module -> {pattern, C}, the per-module C resolution
    metrics.jsonl     one JSON object per logged step (losses, eval metrics)
    checkpoint.pt     the latest training state, for --resume (written atomically)
    model.pt          the final components and CI functions
    figures/          PNG figures
    progress.json     step, latest loss, steps/s and ETA, updated while it trains (spd.progress)
    summary.json      final metrics per module; present only once the run completed
    run.log           the run's log
    wandb/            the W&B run's files, when the config names a wandb_project
"""

import os
import shutil
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
    def fingerprint(self) -> Path:
        return self.path / "fingerprint.json"

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
    def progress(self) -> Path:
        return self.path / "progress.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def log(self) -> Path:
        return self.path / "run.log"

    @property
    def wandb(self) -> Path:
        return self.path / "wandb"

    def run_files(self) -> list[Path]:
        """Everything a run writes here, present or not."""
        return [self.config, self.fingerprint, self.modules, self.metrics, self.checkpoint,
                self.model, self.figures, self.progress, self.summary, self.log, self.wandb]

    def holds_a_run(self) -> bool:
        return any(path.exists() for path in self.run_files())

    def clear(self) -> None:
        """Remove a previous run's files (to start over); anything else in the directory stays."""
        for path in self.run_files():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def is_complete(self) -> bool:
        return self.summary.exists()
