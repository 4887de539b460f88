"""From experiments and a sweep file to jobs: one raw config per point of the sweep's grid.

The grid is the cartesian product of the swept parameters in file order (the last one varies
fastest). Each job's config is its experiment's registry config with the fixed and swept values
set; configs are validated later (see orchestrator.sweep.validate), but a value that cannot be set (an
unknown pattern, a key under a non-mapping) is recorded as the job's error, and so is a config
that rejects a fixed list where it takes one value, with how to sweep it instead.
"""

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orchestrator.sweep.file import SweepFile, sweep_hint
from orchestrator.sweep.params import ConfigKey, Param, ParamKey, apply_params, format_value
from spd.config import Config
from spd.config_loading import ConfigError, format_validation_error, load_raw_config


@dataclass(frozen=True)
class JobSpec:
    experiment: str
    params: dict[str, Any]
    """Swept values by parameter label, in file order (fixed values are not listed)."""
    name: str
    raw_config: dict[str, Any] | None
    error: str | None = None
    """Why the config could not be built; None when raw_config is set."""


def expand_jobs(
    experiments: list[str],
    sweep: SweepFile | None,
    cli_overrides: dict[str, Any],
    job_suffix: str | None = None,
) -> list[JobSpec]:
    """Every job of every experiment; `cli_overrides` (dotted key -> value) apply to every job,
    after the sweep's values."""
    jobs = []
    for experiment in experiments:
        params = sweep.params_for(experiment) if sweep is not None else []
        base = load_raw_config(experiment)
        swept = [p for p in params if p.swept]
        short = short_labels(swept)
        for point in itertools.product(*(p.values for p in swept)):
            assignment = dict(zip((p.key for p in swept), point, strict=True))
            ordered: list[tuple[ParamKey, Any]] = [
                (p.key, assignment[p.key] if p.swept else p.values[0]) for p in params
            ]
            named = {p.label: assignment[p.key] for p in swept}
            name = run_name(
                experiment, {short[p.label]: assignment[p.key] for p in swept}, job_suffix
            )
            try:
                raw = apply_params(base, ordered)
                raw = apply_params(raw, [(ConfigKey(k), v) for k, v in cli_overrides.items()])
                check_fixed_lists(raw, params)
            except ConfigError as e:
                jobs.append(JobSpec(experiment, named, name, None, str(e)))
                continue
            jobs.append(JobSpec(experiment, named, name, raw))
    return jobs


def check_fixed_lists(raw: dict[str, Any], params: list[Param]) -> None:
    """ConfigError with how to sweep, when the config rejects a fixed list as a whole: the
    research code swept `seed: [0, 1]`, here a plain list is one value (right for list fields
    such as `target_module_patterns`, so only the config's own rejection tells them apart)."""
    lists = [
        p
        for p in params
        if not p.swept and isinstance(p.key, ConfigKey) and isinstance(p.values[0], list)
    ]
    if not lists:
        return
    try:
        with warnings.catch_warnings():  # orchestrator.sweep.validate validates again, and warns
            warnings.simplefilter("ignore")
            Config.model_validate(raw)
    except ValidationError as e:
        # The list itself is the rejected input, not an entry inside a list field.
        rejected = [p for p in lists if any(item["input"] is p.values[0] for item in e.errors())]
        if rejected:
            hints = [
                f"  {p.label}: a plain list is one value; {sweep_hint((p.label,), p.values[0])}"
                for p in rejected
            ]
            raise ConfigError("\n".join([format_validation_error(e), *hints])) from None


def short_labels(swept: list[Param]) -> dict[str, str]:
    """Each label's shortest dotted suffix that no other swept label ends with, for run names:
    `losses.importance_minimality.coeff` -> `coeff`, unless another swept key also ends in it."""
    labels = [p.label for p in swept]
    short = {}
    for label in labels:
        parts = label.split(".") if not label.endswith("]") else [label]
        for n in range(1, len(parts) + 1):
            candidate = ".".join(parts[-n:])
            clashes = [
                other
                for other in labels
                if other != label and (other == candidate or other.endswith("." + candidate))
            ]
            if not clashes:
                short[label] = candidate
                break
        else:
            short[label] = label
    return short


def run_name(experiment: str, values: dict[str, Any], job_suffix: str | None) -> str:
    """`tms_5-2-C[linear1]=10-seed=1[-suffix]`: the experiment, then each swept value."""
    parts = [experiment] + [f"{label}={format_value(value)}" for label, value in values.items()]
    if job_suffix:
        parts.append(job_suffix)
    return "-".join(parts)
