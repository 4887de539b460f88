"""Stopping a run whose loss or weights stopped being finite, before it writes them to disk.

A diverged run (typically a too-high lr) otherwise trains on NaN, overwrites its last good
checkpoint and fails much later somewhere unrelated. On a GPU the guard keeps a device-side
record of the first step whose total loss was non-finite, so the hot path never waits for the
device; the training loop reads it only where it synchronises anyway (log steps, evaluations,
checkpoints, the end). On CPU, where reading a value is free, it checks every step.
"""

import logging
import math
from collections.abc import Iterable
from typing import NoReturn

import torch
from torch import Tensor

from spd.metric_names import TOTAL_LOSS

logger = logging.getLogger(__name__)

NO_BAD_STEP = torch.iinfo(torch.long).max


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or non-finite parameters at `step`."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


class DivergenceGuard:
    """Watches each step's losses and, before anything is saved, the parameters.

    Only the total loss is watched per step: with finite loss coefficients (config floats must be
    finite) it is non-finite whenever a term is, since 0·inf and 0·nan are nan.

    On CPU, reading a value costs no device sync, so every step is checked and the error names
    the exact step and its non-finite terms. Elsewhere the first bad step is only recorded on the
    device; the error, raised at the next `check`, names that step and the terms that are
    non-finite at the step where it was detected (the first bad step's own terms are gone).
    """

    def __init__(self, device: torch.device, grad_clipped: bool):
        # min over observed steps of (step if its total was non-finite else NO_BAD_STEP)
        self.first_bad_step = torch.tensor(NO_BAD_STEP, device=device)
        self.check_every_step = device.type == "cpu"
        self.hint = "lower lr" if grad_clipped else "lower lr, or set grad_clip_norm"
        self.step = -1
        self.terms: dict[str, Tensor] = {}

    def observe(self, step: int, terms: dict[str, Tensor]) -> None:
        """Watch `step`'s logged terms; on a GPU without a device sync (3 tiny kernels)."""
        self.step, self.terms = step, terms
        total = terms[TOTAL_LOSS]
        if self.check_every_step:
            # Cheaper than any tensor op: a CPU scalar is read in place.
            if not math.isfinite(float(total)):
                self.diverged(step)
            return
        bad_step = torch.where(torch.isfinite(total), NO_BAD_STEP, step)
        torch.minimum(self.first_bad_step, bad_step, out=self.first_bad_step)

    def check(self) -> None:
        """Raise TrainingDiverged if an observed step had a non-finite loss (syncs the device)."""
        first_bad = int(self.first_bad_step)
        if first_bad != NO_BAD_STEP:
            self.diverged(first_bad)

    def diverged(self, first_bad: int) -> NoReturn:
        """Raise for a loss first non-finite at `first_bad`, naming the last step's bad terms."""
        # The watched total first, then the terms that made it non-finite.
        names = sorted(self.terms, key=lambda name: name != TOTAL_LOSS)
        values = {name: float(self.terms[name]) for name in names}
        bad_terms = (
            ", ".join(f"{name}={v:g}" for name, v in values.items() if not math.isfinite(v))
            or f"{TOTAL_LOSS} was non-finite, the terms are finite again"
        )
        detected = "" if first_bad == self.step else f" (detected at step {self.step})"
        self.fail(first_bad, f"training diverged at step {first_bad}{detected}: {bad_terms}")

    def check_state(self, step: int, named_parameters: Iterable[tuple[str, Tensor]]) -> None:
        """`check`, then that every parameter is finite after `step`: call before saving.

        A finite loss with non-finite gradients (or an overflowing update) still leaves non-finite
        weights, which only the next step's loss would show.
        """
        self.check()
        named = list(named_parameters)
        finite = torch.stack([torch.isfinite(p).all() for _, p in named]).tolist()  # one sync
        bad = [name for (name, _), ok in zip(named, finite, strict=True) if not ok]
        if bad:
            self.fail(
                step,
                f"training diverged at step {step}: the loss was finite but the optimizer step "
                f"(non-finite gradients?) left non-finite parameters: {', '.join(bad)}",
            )

    def fail(self, step: int, message: str, hint: str | None = None) -> NoReturn:
        """Log the error, so that the run's run.log records it, and raise."""
        message = f"{message} ({hint or self.hint})"
        logger.error(message)
        raise TrainingDiverged(step, message)
