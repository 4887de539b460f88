"""Which subcomponents are alive: each module tracks its own C components.

A component fires on a batch when its CI exceeds `threshold` at any position of that batch. It is
dead once it has not fired for `n_examples_until_dead` examples, counted in whole batches.
"""

import math

import torch
from torch import Tensor


class AliveComponentsTracker:
    def __init__(
        self,
        module_to_c: dict[str, int],
        threshold: float,
        n_examples_until_dead: int,
        examples_per_batch: int,
        device: torch.device,
    ):
        self.threshold = threshold
        self.n_batches_until_dead = math.ceil(n_examples_until_dead / examples_per_batch)
        self.batches_since_fired = {
            path: torch.zeros(C, dtype=torch.int64, device=device) for path, C in module_to_c.items()
        }

    def update(self, ci: dict[str, Tensor]) -> None:
        self.record(self.fired(ci))

    def fired(self, ci: dict[str, Tensor]) -> Tensor:
        """Which components fired on a batch with CI `ci`: one flag per component, the modules'
        flags concatenated (data-parallel ranks sum them over their parts of a batch)."""
        return torch.cat([
            (ci[path].detach() > self.threshold).flatten(0, -2).any(dim=0)
            for path in self.batches_since_fired
        ])

    def record(self, fired: Tensor) -> None:
        """Count one batch on which the components flagged (non-zero) in `fired` fired."""
        flags = fired.split([len(c) for c in self.batches_since_fired.values()])
        for counter, module_fired in zip(self.batches_since_fired.values(), flags, strict=True):
            counter.add_(1).masked_fill_(module_fired.bool(), 0)

    def alive_mask(self, path: str) -> Tensor:
        return self.batches_since_fired[path] < self.n_batches_until_dead

    def n_alive(self) -> dict[str, int]:
        return {path: int(self.alive_mask(path).sum()) for path in self.batches_since_fired}

    def state_dict(self) -> dict[str, Tensor]:
        return {path: c.clone() for path, c in self.batches_since_fired.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for path, counter in state.items():
            self.batches_since_fired[path].copy_(counter)
