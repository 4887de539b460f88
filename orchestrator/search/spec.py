"""The Optuna search file: what a search varies, what it fixes, and what it optimises.

    experiment: tms_5-2              # or given by --experiments
    fixed: {steps: 2000}             # like a sweep file section without `values:`
    search:
      C:                             # per module pattern: an int range (or one range: `C: {...}`)
        linear1: {low: 2, high: 20}
        linear2: {low: 2, high: 40, log: true}
      losses.importance_minimality.coeff: {low: 1.0e-4, high: 1.0e-2, log: true}
      ci_fn_type: {choices: [mlp, vector_mlp]}
    objectives: {loss/stochastic_recon: minimize, C/total: minimize}
    constraint: {metric: loss/stochastic_recon, max: 0.01}
    sampler: {name: tpe, seed: 0}
    pruner: {name: median}

Objective and constraint metrics are names of the run summary's flat `metrics` map
(spd.metric_names). The whole file is checked against the experiment's config before anything
is submitted: patterns exist, ranges are ranges, the configs at the corners of the search space
validate, and the runs will report the metrics it names.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from pydantic import Field, ValidationError, model_validator

from orchestrator.sweep.file import SweepFileError, flatten_section, load_file_model
from orchestrator.sweep.params import PATTERN_C_KEYS, ConfigKey, ParamKey, PatternC, apply_params
from spd.config import Config
from spd.config_loading import (
    ConfigError,
    error_message,
    load_raw_config,
    validate_config,
)
from spd.metric_names import metric_name_problem
from spd.registry import EXPERIMENTS
from spd.strict_model import StrictModel
from spd.validate import Validator, raise_problems

Direction = Literal["minimize", "maximize"]


class IntRange(StrictModel):
    low: int
    high: int
    step: Annotated[int, Field(gt=0)] = 1
    log: bool = False

    @model_validator(mode="after")
    def _is_a_range(self) -> "IntRange":
        check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("a log-scale int range takes no step")
        return self

    def suggest(self, trial: optuna.Trial, label: str) -> int:
        return trial.suggest_int(label, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> tuple[int, int]:
        return self.low, self.high

    def grid(self) -> list[int] | None:
        return list(range(self.low, self.high + 1, self.step))


class FloatRange(StrictModel):
    low: float
    high: float
    step: Annotated[float, Field(gt=0)] | None = None
    log: bool = False

    @model_validator(mode="after")
    def _is_a_range(self) -> "FloatRange":
        check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("a log-scale float range takes no step")
        return self

    def suggest(self, trial: optuna.Trial, label: str) -> float:
        return trial.suggest_float(label, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> tuple[float, float]:
        return self.low, self.high

    def grid(self) -> list[float] | None:
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(n + 1)]


class Choices(StrictModel):
    choices: Annotated[list[Any], Field(min_length=1)]

    def suggest(self, trial: optuna.Trial, label: str) -> Any:
        return trial.suggest_categorical(label, self.choices)

    def corners(self) -> tuple[Any, ...]:
        return tuple(self.choices)

    def grid(self) -> list[Any] | None:
        return list(self.choices)


Space = IntRange | FloatRange | Choices


def check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0, got {low}")


def parse_space(label: str, spec: Any) -> Space:
    """`{choices: [...]}`, or `{low, high, ...}`: an int range when low and high are ints."""
    if not isinstance(spec, dict):
        raise ValueError(  # noqa: TRY004 -- pydantic reports ValueErrors
            f"{label}: give {{low: , high: }} or {{choices: [...]}}, not {spec!r}"
        )
    try:
        if "choices" in spec:
            return Choices.model_validate(spec)
        ints = all(
            isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool)
            for k in ("low", "high")
        )
        return (IntRange if ints else FloatRange).model_validate(spec)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'range'}: {error_message(err)}"
            for err in e.errors()
        )
        raise ValueError(f"{label}: {problems}") from None


def parse_search(section: dict[str, Any]) -> dict[ParamKey, Space]:
    space: dict[ParamKey, Space] = {}
    for key, value in section.items():
        if key in PATTERN_C_KEYS:
            field = PATTERN_C_KEYS[key]
            one_range = isinstance(value, dict) and ("low" in value or "choices" in value)
            per_pattern = {None: value} if one_range else value
            if not isinstance(per_pattern, dict) or not per_pattern:
                raise ValueError(f"search.{key}: give a range, or a mapping of pattern -> range")
            for pattern, spec in per_pattern.items():
                param = PatternC(field, None if pattern is None else str(pattern))
                parsed = parse_space(f"search.{param.label}", spec)
                if not isinstance(parsed, IntRange):
                    raise ValueError(  # noqa: TRY004 -- pydantic reports ValueErrors
                        f"search.{param.label}: C takes an int range (low, high ints)"
                    )
                space[param] = parsed
        else:
            space[ConfigKey(str(key))] = parse_space(f"search.{key}", value)
    return space


class Constraint(StrictModel):
    metric: str
    max: float
    """Feasible when the metric is at most this."""


class Sampler(StrictModel):
    name: Literal["tpe", "random", "cmaes", "grid", "nsgaii"] = "tpe"
    seed: int | None = 0


class Pruner(StrictModel):
    name: Literal["none", "median", "hyperband"] = "none"
    startup_trials: Annotated[int, Field(ge=0)] = 2
    """median: trials that finish before any is pruned."""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """median: training steps before a trial can be pruned."""


class SearchFile(StrictModel):
    experiment: str | None = None
    fixed: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Any] = Field(min_length=1)
    objectives: dict[str, Direction] = Field(min_length=1)
    constraint: Constraint | None = None
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)

    @model_validator(mode="after")
    def _consistent(self) -> "SearchFile":
        if self.experiment is not None and self.experiment not in EXPERIMENTS:
            raise ValueError(
                f"unknown experiment {self.experiment!r}; known: {', '.join(EXPERIMENTS)}"
            )
        fixed = flatten_section(self.fixed, "fixed")
        swept = [param.label for param in fixed.values() if param.swept]
        if swept:
            raise ValueError(f"fixed: {', '.join(swept)}: `values:` belongs in a grid sweep")
        space = parse_search(self.search)
        multi = len(self.objectives) > 1
        if multi and self.pruner.name != "none":
            raise ValueError(
                "pruning needs a single objective (Optuna cannot prune multi-objective)"
            )
        if multi and self.sampler.name == "cmaes":
            raise ValueError("the cmaes sampler is single-objective; use tpe or nsgaii")
        if self.sampler.name == "grid":
            endless = [k.label for k, s in space.items() if s.grid() is None]
            if endless:
                raise ValueError(f"the grid sampler needs a step for float ranges: {endless}")
        return self

    @property
    def fixed_params(self) -> list[tuple[ParamKey, Any]]:
        return [(p.key, p.values[0]) for p in flatten_section(self.fixed, "fixed").values()]

    @property
    def space(self) -> dict[ParamKey, Space]:
        return parse_search(self.search)

    @property
    def directions(self) -> list[Direction]:
        return list(self.objectives.values())

    def metric_names(self) -> list[tuple[str, str]]:
        """(where in the file, metric name) of every metric the search reads."""
        names = [("objectives", name) for name in self.objectives]
        if self.constraint is not None:
            names.append(("constraint.metric", self.constraint.metric))
        return names


class SearchFileError(SweepFileError):
    """A search file that cannot be used, with a message for the user; nothing was submitted."""


def load_search_file(path: Path) -> SearchFile:
    return load_file_model(path, SearchFile, "search file", SearchFileError)


def trial_config(
    experiment: str,
    search: SearchFile,
    values: dict[ParamKey, Any],
    overrides: dict[str, Any],
) -> Config:
    """The experiment's config with the fixed values, then the suggested ones, then the CLI's
    overrides (e.g. device) set; ConfigError when the combination is invalid."""
    assignment = search.fixed_params + list(values.items())
    raw = apply_params(load_raw_config(experiment), assignment)
    raw = apply_params(raw, [(ConfigKey(k), v) for k, v in overrides.items()])
    return validate_config(raw)


def check_search(experiment: str, search: SearchFile, overrides: dict[str, Any]) -> None:
    """Fail before submission when a pattern, key or range cannot make a valid config: the
    configs at the corners of the space (all lows, all highs, every choice) must pass the
    training core's whole validation (spd.validate); and when an objective or the constraint
    names a metric that the runs will not report (spd.metric_names)."""
    space = search.space
    n_corners = max([2] + [len(s.corners()) for s in space.values()])
    problems: dict[str, str] = {}  # error -> the first corner that has it
    validator = Validator(check_device_here=False)  # agents may run on other nodes
    for i in range(n_corners):
        values = {key: s.corners()[i % len(s.corners())] for key, s in space.items()}
        try:
            raise_problems(validator(trial_config(experiment, search, values, overrides)))
        except ConfigError as e:
            problems.setdefault(str(e), ", ".join(f"{k.label}={v}" for k, v in values.items()))
    if problems:
        lines = [
            f"- at {where}:\n    " + error.replace("\n", "\n    ")
            for error, where in problems.items()
        ]
        raise SearchFileError(
            f"the search space of {experiment} holds invalid configs; nothing was submitted:\n"
            + "\n".join(lines)
        )
    lows = {key: s.corners()[0] for key, s in space.items()}
    corner = trial_config(experiment, search, lows, overrides)
    metric_problems = [
        f"{field}: {problem}"
        for field, name in search.metric_names()
        if (problem := metric_name_problem(name, corner, validator.module_paths(corner)))
    ]
    if metric_problems:
        raise SearchFileError(
            f"the search of {experiment} names metrics its runs do not report; nothing was "
            "submitted:\n" + "\n".join(f"- {p}" for p in metric_problems)
        )
