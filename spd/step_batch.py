"""The data of one training or evaluation step, and sharing one evaluation among trivial rows.

In the toy models each batch row is processed on its own, and most rows are all-zero sparse
inputs. When an all-zero row gives every decomposed module an all-zero input, its output is the
same under any masks (components and delta read x = 0, leaving the target's bias), so its
reconstruction error is exactly zero, and all such rows get identical causal importances. Such a
batch is compacted, before the target runs, to the other rows plus one representative zero row
that carries their count as its weight; losses and metrics are weighted means over rows and
equal those of the full batch.

Data parallel (spd.distributed): the rows of a step, compacted or not, are split among the ranks
after compaction; each computes its part and its share of the step's total row weight.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from spd.component_model import ComponentModel, nonzero_row_mask
from spd.low_rank import Activations, as_dense


@dataclass
class StepBatch:
    batch: Tensor
    """Target-model inputs."""
    target_out: Tensor
    """The target's output on them."""
    inputs: dict[str, Activations]
    """Each decomposed module's input."""
    row_weights: Tensor | None = None
    """How many original rows each row stands for; None: one each."""
    nonzero_rows: dict[str, Tensor | None] | None = None
    """Per module, its input's non-zero rows (ComponentModel.nonzero_rows); None: not computed."""
    part: slice | None = None
    """Which rows of the whole step's (compacted) batch these are; None: all of them."""
    n_step_rows: int = 0
    """How many rows the whole step has (compacted): mask noise is drawn for all of them."""
    share: float = 1.0
    """These rows' fraction of the whole step's row weight: a data-parallel rank scales its loss
    by it, so that the losses summed over ranks are the whole batch's."""


def compact_zero_rows(batch: Tensor) -> tuple[Tensor, Tensor | None]:
    """The rows with a non-zero entry plus one all-zero row standing for the other all-zero
    rows, and how many rows each stands for; (batch, None) when fewer than two rows are zero."""
    zero = ~nonzero_row_mask(batch.flatten(1))
    n_zero = int(zero.sum())
    if n_zero <= 1:
        return batch, None
    kept = torch.cat([(~zero).nonzero().squeeze(-1), zero.nonzero()[:1, 0]])
    weights = torch.ones(len(kept), device=batch.device)
    weights[-1] = n_zero
    return batch[kept], weights


def zero_row_is_trivial(model: ComponentModel, batch: Tensor) -> bool:
    """Whether an all-zero input row gives every decomposed module an all-zero input (so any
    masks leave its output alone). Biases can break it (e.g. a deeper residual MLP's later
    layers), so it is checked on the target, one row, every step: the target is frozen, but
    this keeps the check free of state."""
    _, inputs = model.forward_caching_inputs(batch.new_zeros(1, *batch.shape[1:]))
    return all(bool(as_dense(x).eq(0).all()) for x in inputs.values())


def weighted_row_mean(values: Tensor, row_weights: Tensor | None) -> Tensor:
    """Mean over all elements of `values` (rows first), each row counted `row_weights` times."""
    if row_weights is None:
        return values.mean()
    per_row = values.reshape(values.shape[0], -1).mean(-1)
    return (per_row * row_weights).sum() / row_weights.sum()


@torch.no_grad()
def run_target(
    model: ComponentModel,
    batch: Tensor,
    independent_rows: bool,
    part_of: Callable[[int], slice] | None = None,
    *,
    drawn_part: tuple[slice, int] | None = None,
) -> StepBatch:
    """The target's output and module inputs on `batch` (compacted first when rows are
    independent and zero rows trivial: the target then runs on the kept rows only), with each
    input's non-zero rows. `part_of(n_rows)` picks the rows this process computes (spd.distributed);
    a process left without rows takes a copy of the last with share 0, so that its losses stay
    finite and its gradients zero. `drawn_part=(part, n_rows)`: `batch` is already the rows
    `part` of a step of `n_rows` rows, drawn by this process alone (Task.rank_sampler)."""
    row_weights = None
    if independent_rows and zero_row_is_trivial(model, batch):
        batch, row_weights = compact_zero_rows(batch)
    n_step_rows, part, share = len(batch), None, 1.0
    if drawn_part is not None:
        part, n_step_rows = drawn_part
        share = len(batch) / n_step_rows
    elif part_of is not None:
        part = part_of(n_step_rows)
        total_weight = n_step_rows if row_weights is None else float(row_weights.sum())
        if part.start == part.stop:
            part, share = slice(n_step_rows - 1, n_step_rows), 0.0
        batch = batch[part]
        if row_weights is not None:
            row_weights = row_weights[part]
        if share:
            share = (len(batch) if row_weights is None else float(row_weights.sum())) / total_weight
    target_out, inputs = model.forward_caching_inputs(batch)
    return StepBatch(
        batch, target_out, inputs, row_weights, model.nonzero_rows(inputs), part, n_step_rows, share
    )
