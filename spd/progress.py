"""How far a run is: a line in its log every `progress_interval_s` and at each evaluation, and
the same in progress.json, which the orchestrator reads (`spd-sweep status`) without asking the
scheduler. Neither reads the device: the training loop passes the loss it read.

    step 1200/5000 (24%)  loss 0.0123  38.1 steps/s  ETA 1m40s

No torch here: the orchestrator imports this module to read progress.json.
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from spd.atomic_io import atomic_write_text
from spd.strict_model import StrictModel

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds from an arbitrary origin: time.monotonic, or a test's fake clock."""


class Progress(StrictModel):
    """progress.json of a run directory: the state of its latest progress line."""

    step: NonNegativeInt = Field(description="Steps trained.")
    steps: PositiveInt
    loss: float | None = Field(description="The total loss of the latest step; None before one.")
    steps_per_s: NonNegativeFloat | None = Field(
        description="Since this process's first step (compiling and warm-up left out)."
    )
    eta_s: NonNegativeFloat | None = Field(description="Seconds until the last step, at that rate.")
    updated: datetime

    def line(self) -> str:
        parts = [f"step {self.step}/{self.steps} ({100 * self.step // self.steps}%)"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3g}")
        if self.steps_per_s is not None:
            parts.append(f"{self.steps_per_s:.1f} steps/s")
        if self.eta_s is not None:
            parts.append(f"ETA {duration_text(self.eta_s)}")
        return "  ".join(parts)

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")


def read_progress(path: Path) -> Progress | None:
    """The run's progress, or None when it has none (not started) or it cannot be read (a file
    of another spd version): a status display shows what it knows rather than failing."""
    try:
        return Progress.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def duration_text(seconds: float) -> str:
    """40s, 1m40s, 2h05m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class ProgressReporter:
    """Writes progress lines (to the `spd` logger) and progress.json for one training process."""

    def __init__(self, path: Path, steps: int, interval_s: float, clock: Clock = time.monotonic):
        self.path, self.steps, self.interval_s, self.clock = path, steps, interval_s, clock
        self.last_report_s = clock()
        self.rate_origin: tuple[int, float] | None = None
        """(step, time) from which steps/s is measured."""

    def due(self, step: int) -> bool:
        """Whether a line is due now that `step` steps are done. Cheap enough for every step.

        The first call, after this process's first step, starts the step rate's clock: the
        rate (and the ETA) then leaves out the warm-up and the compile of the first step."""
        now = self.clock()
        if self.rate_origin is None:
            self.rate_origin = (step, now)
        return now - self.last_report_s >= self.interval_s

    def report(self, step: int, loss: float | None) -> Progress:
        now = self.clock()
        self.last_report_s = now
        rate = self.steps_per_s(step, now)
        progress = Progress(
            step=step,
            steps=self.steps,
            loss=loss,
            steps_per_s=None if rate is None else round(rate, 3),
            eta_s=None if not rate else round((self.steps - step) / rate, 1),
            updated=datetime.now(UTC),
        )
        logger.info(progress.line())
        progress.write(self.path)
        return progress

    def steps_per_s(self, step: int, now: float) -> float | None:
        if self.rate_origin is None:
            return None
        origin_step, origin_s = self.rate_origin
        if step <= origin_step or now <= origin_s:
            return None
        return (step - origin_step) / (now - origin_s)
