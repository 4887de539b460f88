"""The target model wrapped with the subcomponents and CI functions of its decomposed modules.

The target is not copied. Forward hooks on each decomposed module replace that module's output
with its masked components' output when a mask for it is given, so one model runs the target,
the masked components, or any mix (e.g. one module masked at a time for layerwise losses).
"""

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from spd.ci_functions import make_ci_function, reads_inner_acts
from spd.components import (
    Components,
    EmbeddingComponents,
    TransposedComponents,
    make_components,
    target_weight,
)
from spd.low_rank import Activations, LowRankSum, as_dense
from spd.sigmoids import SIGMOIDS

logger = logging.getLogger(__name__)


@dataclass
class ModuleMask:
    """What replaces one module in a forward: its components scaled by `mask` (..., C), plus the
    delta component (W - UV) scaled by `delta_mask` (...,) when the run uses one."""

    mask: Tensor
    delta_mask: Tensor | None = None


@dataclass
class CausalImportances:
    lower: dict[str, Tensor]
    """CI in [0, 1] per module, (..., C): the masks' lower bounds."""
    upper: dict[str, Tensor]
    """The upper-leaky CI per module: what importance minimality penalises."""
    inner_acts: dict[str, Tensor]
    """x @ V of each module's target input, for the modules whose CI function reads it."""


def nonzero_row_mask(rows: Tensor) -> Tensor:
    """(n,) True where a row of `rows` (n, d) has an entry other than zero (NaN counts).

    Two float reductions: several times faster on CPU than `rows.ne(0).any(-1)`, whose boolean
    reduction is slow, and this runs on every module input of every step.
    """
    return (rows.amax(-1) != 0) | (rows.amin(-1) != 0)


def module_key(path: str) -> str:
    """ModuleDict keys cannot contain dots."""
    return path.replace(".", "-")


class ComponentModel(nn.Module):
    def __init__(
        self,
        target: nn.Module,
        module_to_c: dict[str, int],
        ci_fn_type: str,
        ci_fn_hidden_dims: list[int],
        sigmoid_type: str,
        use_delta_component: bool,
        output_attr: str | None = None,
        tied_modules: list[tuple[str, str]] = (),  # type: ignore[assignment]
        compile_ci_fns: bool = False,
    ):
        super().__init__()
        self.target = target.requires_grad_(False)
        self.module_to_c = dict(module_to_c)
        self.ci_fn_type = ci_fn_type
        self.use_delta_component = use_delta_component
        self.output_attr = output_attr
        self.lower_sigmoid, self.upper_sigmoid = SIGMOIDS[sigmoid_type]
        self.components = nn.ModuleDict()
        self.ci_fns = nn.ModuleDict()
        for path, C in self.module_to_c.items():
            module = target.get_submodule(path)
            weight = target_weight(module)
            self.components[module_key(path)] = make_components(module, C)
            self.ci_fns[module_key(path)] = make_ci_function(
                ci_fn_type,
                C,
                weight.shape[1],
                ci_fn_hidden_dims,
                isinstance(module, nn.Embedding),
                weight.device,
                compile_ci_fns,
            )
            module.register_forward_pre_hook(partial(self._cache_input_hook, path))
            module.register_forward_hook(partial(self._replace_output_hook, path))
        for source, tied in tied_modules:
            self._tie(source, tied)
        self._active_masks: dict[str, ModuleMask] = {}
        self._clean_inner_acts: dict[str, Tensor] = {}
        self._weight_deltas: dict[str, Tensor] = {}
        self._input_cache: dict[str, Activations] | None = None

    def _tie(self, source: str, tied: str) -> None:
        """Make `tied` share `source`'s subcomponents, transposed (see TransposedComponents)."""
        for path in (source, tied):
            if path not in self.module_to_c:
                raise ValueError(f"tied_components: {path!r} is not a decomposed module")
        if self.module_to_c[source] != self.module_to_c[tied]:
            # A sweep over one module's C must still run: such a pair is decomposed untied.
            logger.warning(
                "tied_components: %r (C=%d) and %r (C=%d) have different C; decomposing them "
                "separately", source, self.module_to_c[source], tied, self.module_to_c[tied],
            )
            return
        source_weight = target_weight(self.target.get_submodule(source))
        tied_module = self.target.get_submodule(tied)
        if target_weight(tied_module).shape != source_weight.T.shape:
            raise ValueError(f"tied_components: the weight of {tied!r} is not shaped like {source!r}'s transpose")
        self.components[module_key(tied)] = TransposedComponents(self.components_of(source), tied_module)

    @property
    def module_paths(self) -> list[str]:
        return list(self.module_to_c)

    def components_of(self, path: str) -> Components:
        return self.components[module_key(path)]  # type: ignore[return-value]

    def trainable_state_dict(self) -> dict[str, Any]:
        """Components and CI functions only: the target is frozen and rebuilt from its source."""
        return {"components": self.components.state_dict(), "ci_fns": self.ci_fns.state_dict()}

    def load_trainable_state_dict(self, state: dict[str, Any]) -> None:
        self.components.load_state_dict(state["components"])
        self.ci_fns.load_state_dict(state["ci_fns"])

    # --- hooks
    def _cache_input_hook(self, path: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._input_cache is None:
            return
        if path in self._input_cache:
            # One input per module is what its CI function and masks are defined on.
            raise ValueError(f"{path!r} runs more than once per forward: it cannot be decomposed")
        self._input_cache[path] = args[0]

    def _replace_output_hook(
        self, path: str, module: nn.Module, args: tuple[Any, ...], output: Activations
    ) -> Activations | None:
        module_mask = self._active_masks.get(path)
        if module_mask is None:
            return None
        # Until the first masked module has run, the forward computes exactly what the target
        # did, so this module reads its target input, whose x @ V the caller may already have.
        inner_acts = self._clean_inner_acts.pop(path, None)
        self._clean_inner_acts = {}
        return self.components_of(path)(
            args[0],
            module_mask.mask,
            self._weight_deltas.get(path),
            module_mask.delta_mask,
            inner_acts,
            # A module that writes into a factored residual stream (spd.low_rank) stays factored.
            low_rank_output=isinstance(output, LowRankSum),
        )

    # --- forwards
    def _output(self, out: Any) -> Tensor:
        return getattr(out, self.output_attr) if self.output_attr else out

    def forward(
        self,
        *args: Any,
        masks: dict[str, ModuleMask] | None = None,
        target_inner_acts: dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """The target with each module in `masks` replaced by its masked components.

        `target_inner_acts`: x @ V of the modules' inputs in the target's own forward on these
        args (CausalImportances.inner_acts). The first masked module to run reads that same
        input, so it reuses them instead of recomputing its largest matmul.
        """
        self._active_masks = masks or {}
        self._clean_inner_acts = dict(target_inner_acts or {})
        try:
            return self._output(self.target(*args, **kwargs))
        finally:
            self._active_masks, self._clean_inner_acts = {}, {}

    def forward_caching_inputs(
        self, *args: Any, **kwargs: Any
    ) -> tuple[Tensor, dict[str, Activations]]:
        """The target's output and the input of every decomposed module."""
        self._input_cache = {}
        try:
            out = self._output(self.target(*args, **kwargs))
            return out, self._input_cache
        finally:
            self._input_cache = None

    @contextmanager
    def weight_deltas(self) -> Iterator[dict[str, Tensor]]:
        """Within the block, masked forwards include the delta component W - UV."""
        self._weight_deltas = {
            path: target_weight(self.target.get_submodule(path)) - self.components_of(path).weight
            for path in self.module_paths
        } if self.use_delta_component else {}
        try:
            yield self._weight_deltas
        finally:
            self._weight_deltas = {}

    def ci_shape(self, path: str, x: Activations) -> torch.Size:
        """The shape of the CI (and masks) of module `path` on its input x: one row per position."""
        leading = x.shape if self._reads_token_ids(path) else x.shape[:-1]
        return torch.Size([*leading, self.module_to_c[path]])

    def _reads_token_ids(self, path: str) -> bool:
        return isinstance(self.components_of(path), EmbeddingComponents)

    def nonzero_rows(self, inputs: dict[str, Activations]) -> dict[str, Tensor | None]:
        """Per module, the indices of the input rows (positions flattened) that are not all zero;
        None where every row is non-zero or the input is token ids. See `_pre_sigmoid_ci`.
        A factored input's rows count as non-zero where a coefficient is: a superset, which
        only runs the CI function on a few zero rows explicitly.

        Data-dependent shapes: computed before the step's compiled part, which takes them in.
        """
        out: dict[str, Tensor | None] = {}
        for path, x in inputs.items():
            if self._reads_token_ids(path) or (
                isinstance(x, LowRankSum) and not x.zero_rows_possible()
            ):
                out[path] = None
                continue
            rows = x.all_coeffs() if isinstance(x, LowRankSum) else x
            index = nonzero_row_mask(rows.flatten(0, -2)).nonzero().squeeze(-1)
            out[path] = None if len(index) == math.prod(x.shape[:-1]) else index
        return out

    def causal_importances(
        self,
        inputs: dict[str, Activations],
        nonzero_rows: dict[str, Tensor | None] | None = None,
    ) -> CausalImportances:
        if nonzero_rows is None:
            nonzero_rows = self.nonzero_rows(inputs)
        lower, upper, inner_acts = {}, {}, {}
        for path in self.module_paths:
            x = inputs[path]
            if reads_inner_acts(self.ci_fn_type):
                x = inner_acts[path] = self.components_of(path).inner_acts(x)
            else:
                x = as_dense(x)
            pre_sigmoid = self._pre_sigmoid_ci(path, x, nonzero_rows[path])
            lower[path] = self.lower_sigmoid(pre_sigmoid)
            upper[path] = self.upper_sigmoid(pre_sigmoid)
        return CausalImportances(lower=lower, upper=upper, inner_acts=inner_acts)

    def _pre_sigmoid_ci(self, path: str, x: Tensor, nonzero_index: Tensor | None) -> Tensor:
        """The CI function of module `path` on x (its input, or the inner acts x @ V that `mlp`
        reads) for every position, (..., C).

        A CI function maps each row on its own, and sparse inputs (the toy models') have
        all-zero rows (whose inner acts are zero too), which all get the same output. So the
        function runs on the non-zero rows (`nonzero_index`) plus one zero row, whose output is
        broadcast: the same values and gradients as running it on every row, in a fraction of
        the work.
        """
        ci_fn = self.ci_fns[module_key(path)]
        if nonzero_index is None:
            return ci_fn(x)
        rows = x.flatten(0, -2)
        out = ci_fn(torch.cat([rows[nonzero_index], rows.new_zeros(1, rows.shape[-1])]))
        # Into a fresh tensor: torch 2.13's inductor miscompiles index_put on the stride-0
        # expanded view (every row aliases one), which eager mode copies first anyway.
        shared = out[-1:].expand(len(rows), -1).clone().index_put_((nonzero_index,), out[:-1])
        return shared.unflatten(0, x.shape[:-1])
