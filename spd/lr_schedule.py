"""Learning rate as a function of the step: linear warm-up, then a decay shape."""

import math

from spd.config import LRSchedule


def lr_at(step: int, total_steps: int, base_lr: float, schedule: LRSchedule) -> float:
    """During warm-up lr·step/warmup_steps; after it lr·(final + (1 - final)·shape(s, S)).

    With s steps since warm-up out of S: constant 1; linear 1 - s/S; cosine cos(π/2 · s/(S-1)),
    so cosine reaches exactly `final_frac` on the last step.
    """
    warmup_steps = int(total_steps * schedule.warmup_frac)
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    s, S = step - warmup_steps, total_steps - warmup_steps
    if schedule.type == "constant":
        shape = 1.0
    elif schedule.type == "linear":
        shape = 1 - s / S
    else:
        shape = 1.0 if S == 1 else math.cos(0.5 * math.pi * s / (S - 1))
    return base_lr * (schedule.final_frac + (1 - schedule.final_frac) * shape)
