"""The data of one training or evaluation step, and sharing one evaluation among trivial rows.

In the toy models each batch row is processed on its own, and most rows are all-zero sparse
inputs. A row whose every decomposed module sees an all-zero input has the same output under any
masks (components and delta read x = 0, leaving the target's bias), so its reconstruction error
is exactly zero, and all such rows get identical causal importances. Such a batch is compacted to
the other rows plus one representative zero row that carries their count as its weight; losses
and metrics are weighted means over rows and equal those of the full batch.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from spd.component_model import ComponentModel


@dataclass
class StepBatch:
    batch: Tensor
    """Target-model inputs."""
    target_out: Tensor
    """The target's output on them."""
    inputs: dict[str, Tensor]
    """Each decomposed module's input."""
    row_weights: Tensor | None = None
    """How many original rows each row stands for; None: one each."""
    nonzero_rows: dict[str, Tensor | None] | None = None
    """Per module, its input's non-zero rows (ComponentModel.nonzero_rows); None: not computed."""


def compact_trivial_rows(data: StepBatch) -> StepBatch:
    """The rows with work to do, plus one weighted zero row standing for all the others."""
    n_rows = data.batch.shape[0]
    trivial = torch.ones(n_rows, dtype=torch.bool, device=data.batch.device)
    for x in data.inputs.values():
        trivial &= x.reshape(n_rows, -1).eq(0).all(-1)
    n_trivial = int(trivial.sum())
    if n_trivial <= 1:
        return data
    kept = torch.cat([(~trivial).nonzero().squeeze(-1), trivial.nonzero()[:1, 0]])
    weights = torch.ones(len(kept), device=data.batch.device)
    weights[-1] = n_trivial
    return StepBatch(
        data.batch[kept],
        data.target_out[kept],
        {path: x[kept] for path, x in data.inputs.items()},
        weights,
    )


def weighted_row_mean(values: Tensor, row_weights: Tensor | None) -> Tensor:
    """Mean over all elements of `values` (rows first), each row counted `row_weights` times."""
    if row_weights is None:
        return values.mean()
    per_row = values.reshape(values.shape[0], -1).mean(-1)
    return (per_row * row_weights).sum() / row_weights.sum()


@torch.no_grad()
def run_target(model: ComponentModel, batch: Tensor, independent_rows: bool) -> StepBatch:
    """The target's output and module inputs on `batch` (compacted when rows are independent),
    with each input's non-zero rows."""
    target_out, inputs = model.forward_caching_inputs(batch)
    data = StepBatch(batch, target_out, inputs)
    if independent_rows:
        data = compact_trivial_rows(data)
    data.nonzero_rows = model.nonzero_rows(data.inputs)
    return data
