"""What the training loop needs from an experiment: a frozen target and a source of inputs."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

BatchSampler = Callable[[int, torch.Generator], Tensor]
"""(batch_size, generator) -> a batch of target-model inputs on the run's device."""


@dataclass
class Task:
    target: nn.Module
    sample_batch: BatchSampler
    feature_probe: Tensor | None = None
    """One input per feature (toy models): row j activates feature j alone. Used for CI metrics."""
    output_attr: str | None = None
    """Attribute of the target's output holding the tensor to compare (e.g. 'logits')."""
    positions_per_input: int = 1
    """Positions at which each input is decomposed (sequence length for language models)."""
