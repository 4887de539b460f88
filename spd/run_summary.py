"""summary.json: what a completed run found. The training core writes it as its last act (a run
is complete exactly when it exists); the orchestrator's tracking, searches and reports read it.

Metric names are those of spd.metric_names.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from spd.atomic_io import atomic_write_text
from spd.metric_names import (
    ALIVE,
    ALIVE_LABEL,
    CI_L0,
    ML2R,
    MMCS,
    TARGET_CI_ERROR,
    metric_name,
)
from spd.strict_model import StrictModel

MODULE_METRICS = (ALIVE, CI_L0, TARGET_CI_ERROR, MMCS, ML2R)
"""The per-module metrics a module's summary repeats (where the run reports them)."""


class ModuleSummary(StrictModel):
    """One decomposed module: the pattern that chose its C, and its final per-module metrics."""

    # A metric may be undefined (MMCS of a module without alive components is nan); JSON keeps
    # it as NaN, not as null.
    model_config = ConfigDict(allow_inf_nan=True, ser_json_inf_nan="constants")

    pattern: str
    C: int
    alive: float | None = Field(None, description=f"Components {ALIVE_LABEL}.")
    ci_l0: float | None = None
    target_ci_error: float | None = None
    mmcs: float | None = None
    ml2r: float | None = None

    @classmethod
    def of(cls, pattern: str, c: int, path: str, metrics: dict[str, float]) -> "ModuleSummary":
        values = {
            family: metrics[metric_name(family, path)]
            for family in MODULE_METRICS
            if metric_name(family, path) in metrics
        }
        return cls(pattern=pattern, C=c, **values)


class RunSummary(StrictModel):
    model_config = ConfigDict(allow_inf_nan=True, ser_json_inf_nan="constants")
    status: Literal["completed"] = "completed"
    task: str
    steps: int
    wall_time_s: float
    steps_per_s: float | None = Field(description="Optimizer steps per second of this process.")
    metrics: dict[str, float] = Field(description="Final evaluation: metric name -> value.")
    modules: dict[str, ModuleSummary] = Field(description="Module path -> its summary.")
    figures: list[str] = Field(description="Figure files, relative to the run directory.")

    def flat(self) -> dict[str, Any]:
        """What the W&B run's summary holds of it: each value of summary.json under its JSON path
        joined by '/': `task`, `steps`, ..., `metrics/<metric name>`,
        `modules/<module path>/<field>` (e.g. `modules/linear1/C`), `figures` (the list)."""
        return flatten(self.model_dump(exclude_none=True))

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2, exclude_none=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> "RunSummary":
        return cls.model_validate_json(path.read_text())


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}/")
        else:
            out[prefix + key] = value
    return out
