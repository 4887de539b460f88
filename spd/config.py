"""The run configuration: one strict pydantic model that every entry point validates against.

Unknown keys are errors and instances are frozen, so a config that loaded is the config that ran.
Per-module C lives in the module patterns themselves: `[["linear1", 10], ["linear2", 20]]`.
The old form (a global `C` plus plain patterns) is migrated with one deprecation warning.
"""

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator

from spd.experiments.lm.task_config import LMTaskConfig
from spd.experiments.resid_mlp.task_config import ResidMLPTaskConfig
from spd.experiments.tms.task_config import TMSTaskConfig
from spd.metrics.target_ci_patterns import TargetCIPatterns
from spd.strict_model import StrictModel

ModulePattern = tuple[str, int]
"""An fnmatch pattern over module paths and the number of subcomponents C of each matched module."""


class FaithfulnessLoss(StrictModel):
    coeff: NonNegativeFloat


class ImportanceMinimalityLoss(StrictModel):
    """Sum over components of (upper-leaky CI + eps)^p, mean over the batch, summed over modules.

    p anneals linearly from `pnorm` to `p_anneal_final_p` between the fractions of training
    `p_anneal_start_frac` and `p_anneal_end_frac`; with `p_anneal_final_p` unset p stays `pnorm`.
    """

    coeff: NonNegativeFloat
    pnorm: float = Field(1.0, gt=0)
    eps: NonNegativeFloat = 1e-12
    p_anneal_start_frac: float = Field(1.0, ge=0, le=1)
    p_anneal_final_p: float | None = Field(None, gt=0)
    p_anneal_end_frac: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _anneal_window_ordered(self) -> "ImportanceMinimalityLoss":
        if self.p_anneal_end_frac < self.p_anneal_start_frac:
            raise ValueError("p_anneal_end_frac must be >= p_anneal_start_frac")
        return self


class ReconstructionLoss(StrictModel):
    coeff: NonNegativeFloat


class Losses(StrictModel):
    """The loss terms of SPD; a term set to null is not computed."""

    faithfulness: FaithfulnessLoss | None = None
    importance_minimality: ImportanceMinimalityLoss
    stochastic_recon: ReconstructionLoss | None = None
    stochastic_recon_layerwise: ReconstructionLoss | None = None
    ci_masked_recon: ReconstructionLoss | None = None


class LRSchedule(StrictModel):
    """lr(step) = lr * warmup ramp, then lr * (final_frac + (1 - final_frac) * shape(progress))."""

    type: Literal["constant", "linear", "cosine"] = "constant"
    warmup_frac: float = Field(0.0, ge=0, lt=1)
    final_frac: float = Field(0.0, ge=0, le=1)


class FaithfulnessWarmup(StrictModel):
    """Steps of faithfulness-only training of the components before SPD proper starts."""

    steps: PositiveInt
    lr: float = Field(gt=0)
    weight_decay: NonNegativeFloat = 0.0


TaskConfig = Annotated[
    TMSTaskConfig | ResidMLPTaskConfig | LMTaskConfig, Field(discriminator="task_name")
]


class Config(StrictModel):
    # --- what to decompose
    task_config: TaskConfig
    pretrained_model_path: Path | None = Field(
        None, description="A trained target saved by spd-train-target; None trains (cached)."
    )
    target_module_patterns: list[ModulePattern] = Field(min_length=1)
    identity_module_patterns: list[ModulePattern] = Field(default_factory=list)
    tied_components: list[tuple[str, str]] = Field(
        default_factory=list,
        description="[source, tied] module pairs whose target weights are transposes of each other "
        "(TMS: linear2 = linear1ᵀ); the tied module shares the source's subcomponents, transposed. "
        "A pair whose modules have different C is decomposed untied (with a warning).",
    )

    # --- the method
    seed: int = 0
    ci_fn_type: Literal["mlp", "vector_mlp", "shared_mlp"] = "mlp"
    ci_fn_hidden_dims: list[PositiveInt] = Field(default_factory=lambda: [16])
    sigmoid_type: Literal["leaky_hard", "upper_leaky_hard", "hard", "normal"] = "leaky_hard"
    sampling: Literal["continuous", "binomial"] = "continuous"
    use_delta_component: bool = False
    n_mask_samples: PositiveInt = 1
    losses: Losses
    output_loss_type: Literal["mse", "kl"] = "mse"

    # --- optimisation
    steps: PositiveInt
    batch_size: PositiveInt
    lr: float = Field(gt=0)
    lr_schedule: LRSchedule = LRSchedule()
    faithfulness_warmup: FaithfulnessWarmup | None = None
    grad_clip_norm: float | None = Field(None, gt=0)

    # --- evaluation, logging, checkpoints
    log_freq: PositiveInt = 100
    eval_freq: PositiveInt = 1000
    eval_batch_size: PositiveInt | None = None
    n_eval_steps: PositiveInt = 1
    image_freq: PositiveInt | None = Field(
        None, description="Draw figures at every evaluation at a multiple of this step (and at "
        "the end); None: at the end only."
    )
    image_on_first_step: bool = Field(
        False, description="Draw figures at the step-0 evaluation too (before any training, so "
        "off by default: drawing costs about a second before the first step)."
    )
    save_freq: PositiveInt | None = 1000
    progress_interval_s: NonNegativeFloat = Field(
        30.0,
        description="Seconds between progress lines in run.log (step, loss, steps/s, ETA) and "
        "updates of progress.json; there is one at each evaluation too.",
    )
    target_ci_patterns: TargetCIPatterns | None = Field(
        None, description="The known CI solution of a toy model, for the target_ci_error metric."
    )
    ci_alive_threshold: float = Field(0.1, ge=0, lt=1)
    n_examples_until_dead: PositiveInt = 100_000
    user_metrics: list[str] = Field(
        default_factory=list, description="'module:function' callables adding metrics at eval."
    )
    user_figures: list[str] = Field(
        default_factory=list, description="'module:function' callables adding figures at eval."
    )

    # --- hardware
    device: str = Field("auto", description="'auto' picks cuda when available, else cpu.")
    autocast_bf16: bool = False
    compile: bool = Field(
        False,
        description="Fuse the one-hidden-layer mlp/vector_mlp CI functions with torch.compile: "
        "several times faster on big CI functions, after a one-off compile of about a minute.",
    )
    compile_step: bool = Field(
        False,
        description="torch.compile the differentiable part of each training step (CI functions, "
        "masks, losses; forward and backward) as one graph: about 2x faster for small models "
        "such as TMS, after a compile of about half a minute. Not with `compile`.",
    )

    # --- tracking
    wandb_project: str | None = None
    wandb_run_name: str | None = None
    wandb_tags: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _migrate_global_c(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return migrate_global_c(data)

    @model_validator(mode="after")
    def _check_patterns(self) -> "Config":
        for field in ("target_module_patterns", "identity_module_patterns"):
            check_module_patterns(getattr(self, field), field)
        if self.image_freq is not None and self.image_freq % self.eval_freq != 0:
            raise ValueError(
                f"image_freq ({self.image_freq}) must be a multiple of eval_freq "
                f"({self.eval_freq}): figures are drawn at evaluations"
            )
        if self.image_on_first_step and self.image_freq is None:
            raise ValueError(
                "image_on_first_step draws the image_freq figures at step 0 too: set image_freq"
            )
        if self.compile and self.compile_step:
            raise ValueError(
                "compile_step compiles the CI functions with the rest of the step: drop compile"
            )
        if isinstance(self.task_config, LMTaskConfig):
            if self.output_loss_type != "kl":
                raise ValueError("the lm task compares next-token distributions: set output_loss_type: kl")
            if self.task_config.dtype != "float32" and not self.autocast_bf16:
                raise ValueError(f"task_config.dtype {self.task_config.dtype} needs autocast_bf16: true "
                                 "(the components are float32)")
        return self

    @property
    def all_module_patterns(self) -> list[ModulePattern]:
        """Target patterns, then identity patterns as the `.pre_identity` modules they create."""
        identity = [(f"{pattern}.pre_identity", c) for pattern, c in self.identity_module_patterns]
        return list(self.target_module_patterns) + identity

    @property
    def eval_batch(self) -> int:
        return self.eval_batch_size or self.batch_size


def check_module_patterns(patterns: list[ModulePattern], field: str) -> None:
    """Reject C < 1 and duplicated patterns, naming the offending pattern."""
    seen: set[str] = set()
    for pattern, c in patterns:
        if c < 1:
            raise ValueError(f"{field}: C of pattern {pattern!r} is {c}; C must be at least 1")
        if pattern in seen:
            raise ValueError(f"{field}: pattern {pattern!r} is listed twice")
        seen.add(pattern)


def migrate_global_c(data: dict[str, Any]) -> dict[str, Any]:
    """Turn the deprecated `C: n` + plain patterns into `[pattern, n]` pairs, or explain the mix-up."""
    data = dict(data)
    global_c = data.pop("C", None)
    fields = [f for f in ("target_module_patterns", "identity_module_patterns") if data.get(f)]
    plain = {f: any(isinstance(p, str) for p in data[f]) for f in fields}
    paired = {f: any(not isinstance(p, str) for p in data[f]) for f in fields}
    for f in fields:
        if plain[f] and paired[f]:
            raise ValueError(
                f"{f} mixes plain patterns and [pattern, C] pairs; write every entry as "
                '[pattern, C], e.g. [["linear1", 20], ["linear2", 20]]'
            )
    if global_c is None:
        for f in fields:
            if plain[f]:
                raise ValueError(
                    f"{f} has plain patterns but no C: write each as [pattern, C], "
                    f'e.g. [["{data[f][0]}", 20]] (the global C is deprecated)'
                )
        return data
    if any(paired.values()):
        raise ValueError(
            "the global C cannot be combined with [pattern, C] pairs: remove `C` and give each "
            "pattern its own C"
        )
    warnings.warn(
        f"The global `C: {global_c}` is deprecated; it was applied to every pattern. "
        f"Write patterns as [pattern, C] pairs instead, e.g. "
        f'target_module_patterns: [["{data.get("target_module_patterns", ["linear1"])[0]}", {global_c}]]',
        FutureWarning,
        stacklevel=4,
    )
    for f in fields:
        data[f] = [[p, global_c] for p in data[f]]
    return data
