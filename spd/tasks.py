"""What the training loop needs from an experiment: a frozen target and a source of inputs."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from spd.component_model import CausalImportances, ComponentModel
    from spd.config import Config

BatchSampler = Callable[[int, torch.Generator], Tensor]
"""(batch_size, generator) -> a batch of target-model inputs on the run's device."""

EvalMetrics = Callable[
    ["ComponentModel", Tensor, Tensor, "CausalImportances", "Config", torch.Generator],
    dict[str, Tensor],
]
"""(model, batch, target output, CI, config, generator) -> task-specific metrics of one eval batch,
averaged over the eval batches like the losses."""


@dataclass
class Task:
    target: nn.Module
    sample_batch: BatchSampler
    feature_probe: Tensor | None = None
    """One input per feature (toy models): row j activates feature j alone. Used for CI metrics."""
    output_attr: str | None = None
    """Attribute of the target's output holding the tensor to compare (e.g. 'logits')."""
    independent_rows: bool = False
    """Each batch row goes through the target on its own (toy models; not sequence models), so
    rows on which SPD has nothing to do can share one evaluation (see spd.step_batch)."""
    positions_per_input: int = 1
    """Positions at which each input is decomposed (sequence length for language models)."""
    sample_eval_batch: BatchSampler | None = None
    """Inputs for evaluation when they differ from training's (a held-out split); None: sample_batch."""
    eval_metrics: EvalMetrics | None = None
    rank_sampler: Callable[[int, int], BatchSampler] | None = None
    """(rank, world size) -> a sampler of that rank's own share of the training data, for data too
    costly for every rank to read whole (a stream). A data-parallel rank then draws only its own
    rows, and its generator holds its own place in the data (spd.train keeps each rank's in the
    checkpoint). None: every rank draws the whole batch and takes its part."""

    def __post_init__(self) -> None:
        if self.rank_sampler is not None and self.independent_rows:
            # Compacting zero rows needs the whole batch to split it the same way on every rank.
            raise ValueError("a task with a rank_sampler cannot have independent_rows")
