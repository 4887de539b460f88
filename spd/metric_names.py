"""The names of a run's metrics: the one definition that evaluation, the run summary, searches'
objectives and reports share.

A name is `<family>/<part>`: `loss/<term>` for each loss term and `loss/total`; a per-module
family has `<family>/<module path>` for each decomposed module and (except MMCS/ML2R)
`<family>/total`, their sum; a task's own families (language models: KL, CE) have one part per
masking variant.
"""

from collections.abc import Iterable

from spd.config import Config

TOTAL = "total"

LOSS = "loss"
ALIVE = "alive"
CI_L0 = "ci_l0"
C = "C"
MMCS = "mmcs"
ML2R = "ml2r"
TARGET_CI_ERROR = "target_ci_error"
TARGET_CI_ERROR_TOL_0_2 = "target_ci_error_tol0.2"
KL = "kl"
CE = "ce"
CE_UNRECOVERED = "ce_unrecovered"

# Two different counts of a module's components, never to be shown under each other's name:
ALIVE_LABEL = "alive on the training distribution"
"""What `alive/<module>` (summary `alive`) counts: components whose CI exceeded
`ci_alive_threshold` on some training input within the last `n_examples_until_dead` examples
(spd.metrics.alive_components). A component that fires only on inputs with several features
counts here, and not on the probes."""
PROBE_ACTIVE_LABEL = "active on single-feature probes"
"""What the `ci_per_feature` figure counts: components whose CI exceeds
spd.figures.PROBE_ACTIVE_MIN_CI on some probe input, where one feature alone is on (a toy task's
`feature_probe`): the inputs on which `target_ci_error` is measured."""

IMPORTANCE_MINIMALITY = "importance_minimality"
FAITHFULNESS = "faithfulness"
STOCHASTIC_RECON = "stochastic_recon"
STOCHASTIC_RECON_LAYERWISE = "stochastic_recon_layerwise"
CI_MASKED_RECON = "ci_masked_recon"
OPTIONAL_LOSS_TERMS = (
    FAITHFULNESS,
    STOCHASTIC_RECON,
    STOCHASTIC_RECON_LAYERWISE,
    CI_MASKED_RECON,
)
"""Loss terms a config may switch off (`losses.<term>: null`); importance minimality is always on."""

SUMMED_MODULE_FAMILIES = (ALIVE, CI_L0, C)
"""Per-module families every run reports, with their total."""
MODULE_ONLY_FAMILIES = (MMCS, ML2R)
"""Per-module families every run reports, without a total (a sum of cosines means nothing)."""
TARGET_CI_FAMILIES = (TARGET_CI_ERROR, TARGET_CI_ERROR_TOL_0_2)
"""Per-module families, with totals, of toy runs that know the CI pattern of the solution."""
TASK_FAMILIES = {"lm": (KL, CE, CE_UNRECOVERED)}
"""Families a task's own evaluation adds, by task name; one part per masking variant."""


def metric_name(family: str, part: str = TOTAL) -> str:
    return f"{family}/{part}"


def loss_name(term: str) -> str:
    return metric_name(LOSS, term)


def with_totals(family: str, per_module: dict[str, float]) -> dict[str, float]:
    """The family's per-module values and their sum as `<family>/total`."""
    out = {metric_name(family, path): value for path, value in per_module.items()}
    out[metric_name(family)] = float(sum(per_module.values()))
    return out


LOSS_PREFIX = f"{LOSS}/"
EVAL_PREFIX = "eval/"
"""How metrics.jsonl (and W&B) name an evaluation's metrics: `eval/<metric name>`."""
TOTAL_LOSS = loss_name(TOTAL)
"""The weighted sum of the loss terms: what training minimises."""
FIGURE_PREFIX = "figures/"
"""How W&B names a run's figures: `figures/<name>`, where the run directory has
`figures/<name>.png`; logged at each `image_freq` evaluation and at the end."""


def enabled_loss_terms(config: Config) -> list[str]:
    terms = [IMPORTANCE_MINIMALITY]
    return terms + [t for t in OPTIONAL_LOSS_TERMS if getattr(config.losses, t) is not None]


def metric_name_problem(name: str, config: Config, module_paths: Iterable[str]) -> str | None:
    """Why a run of `config` (decomposing `module_paths`) will not report `name`; None when it
    will, or when a user metric (`user_metrics`, unknown until it runs) might."""
    family, _, part = name.partition("/")
    modules = sorted(module_paths)
    summed = SUMMED_MODULE_FAMILIES + (
        TARGET_CI_FAMILIES if config.target_ci_patterns is not None else ()
    )
    task_families = TASK_FAMILIES.get(config.task_config.task_name, ())
    if family == LOSS:
        parts = [*enabled_loss_terms(config), TOTAL]
    elif family in summed:
        parts = [*modules, TOTAL]
    elif family in MODULE_ONLY_FAMILIES:
        parts = modules
    elif family in task_families:
        return None if part else f"{name!r} names no variant: {family}/<variant>"
    elif config.user_metrics:
        return None
    else:
        families = [LOSS, *summed, *MODULE_ONLY_FAMILIES, *task_families]
        return f"{name!r} is not a metric of this run; metric families: {', '.join(families)}"
    if part not in parts:
        return f"{name!r} is not a metric of this run; {family}/ has: {', '.join(parts)}"
    return None
