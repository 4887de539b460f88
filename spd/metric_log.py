"""Where metrics go: metrics.jsonl in the run directory, and W&B when a project is set."""

import json
from pathlib import Path
from typing import Any


class MetricLog:
    def __init__(self, path: Path, wandb_run: Any | None = None):
        self.path = path
        self.wandb_run = wandb_run

    def log(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=step)

    def truncate_from(self, step: int) -> None:
        """Drop records of `step` and later: a resumed run logs them again."""
        if not self.path.exists():
            return
        kept = [
            line for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] < step
        ]
        self.path.write_text("".join(line + "\n" for line in kept))
