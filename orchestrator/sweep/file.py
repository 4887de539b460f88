"""The sweep file: which config keys a sweep fixes and which it varies, per experiment.

The syntax is documented for users in sweeps/README.md. In short: a top-level `global:` section
and one section per registry experiment; a leaf `{values: [...]}` is swept, any other value is
fixed, nested mappings and dotted keys are the same keys, and `C` / `identity_C` address the C of
the config's `[pattern, C]` entries. Sections are parsed on load, so a malformed file fails
before any job is expanded: a key given twice (in two spellings, or one key inside another) is an
error rather than one spelling silently winning.
"""

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.sweep.params import PATTERN_C_KEYS, ConfigKey, Param, ParamKey, PatternC
from spd.config_loading import ConfigError, error_message, read_yaml_file
from spd.registry import EXPERIMENTS
from spd.strict_model import StrictModel

GLOBAL_SECTION = "global"
SWEEP_KEY = "values"
class SweepFileError(ValueError):
    """A sweep file that cannot be read, with a message meant for the user."""


class SweepFile(StrictModel):
    model_config = ConfigDict(populate_by_name=True)

    global_section: dict[str, Any] = Field(default_factory=dict, alias=GLOBAL_SECTION)
    experiments: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-experiment sections, in file order."
    )

    @model_validator(mode="before")
    @classmethod
    def _sections_are_experiments(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(  # noqa: TRY004 -- pydantic reports ValueErrors, not TypeErrors
                "a sweep file is a mapping of `global:` and experiment sections"
            )
        sections = {k: v if v is not None else {} for k, v in data.items()}
        return {
            GLOBAL_SECTION: sections.pop(GLOBAL_SECTION, {}),
            "experiments": sections,
        }

    @field_validator("experiments")
    @classmethod
    def _known_experiments(cls, sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = [name for name in sections if name not in EXPERIMENTS]
        if unknown:
            raise ValueError(
                f"unknown experiment section(s) {', '.join(unknown)}; sections are `global` or "
                f"one of: {', '.join(EXPERIMENTS)}"
            )
        return sections

    @model_validator(mode="after")
    def _sections_parse(self) -> "SweepFile":
        # Parse every section now so that a malformed file fails on load, not per job.
        flatten_section(self.global_section, GLOBAL_SECTION)
        for name, section in self.experiments.items():
            flatten_section(section, name)
        return self

    def uncovered(self, experiments: list[str]) -> list[str]:
        """The experiments this file sets nothing for (no section of their own, no `global:`
        keys): in a sweep they would silently run their registry config unchanged."""
        if self.global_section:
            return []
        return [name for name in experiments if name not in self.experiments]

    def sections(self) -> list[str]:
        """The file's section names, in file order, `global` first when it has keys."""
        return ([GLOBAL_SECTION] if self.global_section else []) + list(self.experiments)

    def params_for(self, experiment: str) -> list[Param]:
        """The experiment's parameters: `global` merged with its own section, in file order. A
        global key that the section replaces (the same key, or one inside a key the section sets)
        is left out: its values would be overwritten, and an axis of identical jobs remain."""
        inherited = flatten_section(self.global_section, GLOBAL_SECTION)
        own = flatten_section(self.experiments.get(experiment, {}), experiment)
        merged = {
            key: param
            for key, param in inherited.items()
            if not any(isinstance(o, ConfigKey) and o != key and o.replaces(key) for o in own)
        }
        merged.update(own)  # the same key keeps its place in the order, with the section's values
        return list(merged.values())


def load_sweep_file(path: Path) -> SweepFile:
    return load_file_model(path, SweepFile, "sweep file", SweepFileError)


FileModel = TypeVar("FileModel", bound=StrictModel)


def load_file_model(
    path: Path, model: type[FileModel], what: str, error: type[SweepFileError]
) -> FileModel:
    """The YAML file `path` as `model`, or `error` saying what is wrong with it (`what`: how the
    user knows the file, "sweep file" ...)."""
    try:
        data = read_yaml_file(path, what)
    except ConfigError as e:
        raise error(str(e)) from None
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as e:
        raise error(f"{what} {path}:\n{format_errors(e)}") from None


def format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "experiments")
        message = error_message(item)
        lines.append(f"  {where}: {message}" if where else f"  {message}")
    return "\n".join(lines)


def flatten_section(section: dict[str, Any], section_name: str) -> dict[ParamKey, Param]:
    """{key: Param} of one section, in file order. Dotted and nested spellings of a key are the
    same key, so a key may be given once: twice, or together with a key inside it, is an error."""
    if not isinstance(section, dict):
        raise ValueError(  # noqa: TRY004 -- raised inside a pydantic validator
            f"section {section_name!r} must be a mapping of config keys"
        )
    spelled = [
        entry
        for key, value in section.items()
        for entry in (
            _pattern_c_params(PATTERN_C_KEYS[key], key, value, section_name)
            if key in PATTERN_C_KEYS
            else _config_key_params((str(key),), value, section_name)
        )
    ]
    _check_each_key_once(spelled, section_name)
    return {param.key: param for _, param in spelled}


SpelledParam = tuple[tuple[str, ...], Param]
"""A parameter with the path of YAML keys it was written as: ("losses", "faithfulness.coeff")."""


def spelling(path: tuple[str, ...], value: str = "...") -> str:
    """How a key was written, in flow YAML: `losses: {faithfulness: {coeff: ...}}`."""
    text = f"{path[-1]}: {value}"
    for key in reversed(path[:-1]):
        text = f"{key}: {{{text}}}"
    return text


def sweep_hint(path: tuple[str, ...], values: list[Any]) -> str:
    """The research code swept `seed: [0, 1]`; here a plain list is one (fixed) value."""
    return f"to sweep, write `{spelling(path, f'{{{SWEEP_KEY}: {json.dumps(values)}}}')}`"


def _check_each_key_once(spelled: list[SpelledParam], section_name: str) -> None:
    """Every clash of the section at once, so that one edit fixes them all."""
    problems = [
        f"{section_name}: {problem}"
        for i, second in enumerate(spelled)
        for first in spelled[:i]
        if (problem := _clash(first, second)) is not None
    ]
    if problems:
        raise ValueError("\n  ".join(problems))


def _clash(first: SpelledParam, second: SpelledParam) -> str | None:
    """Why two keys of one section cannot both be given: the same key twice would keep whichever
    spelling comes last, and a key inside another (`losses.faithfulness` and
    `losses.faithfulness.coeff`) would keep or lose the inner value depending on their order."""
    if first[1].key == second[1].key:
        return (
            f"{first[1].label} is given twice, as `{spelling(first[0])}` and as "
            f"`{spelling(second[0])}`: keep one"
        )
    (outer_path, outer), (inner_path, inner) = sorted(
        (first, second), key=lambda entry: len(entry[1].label)
    )
    if not (
        isinstance(outer.key, ConfigKey)
        and isinstance(inner.key, ConfigKey)
        and outer.key.contains(inner.key)
    ):
        return None
    return (
        f"`{spelling(outer_path)}` replaces all of {outer.label}, and `{spelling(inner_path)}` "
        "sets a key inside it: which one holds would depend on their order; keep one"
    )


def _leaf(key: ParamKey, value: Any, section_name: str) -> Param:
    if isinstance(value, dict) and SWEEP_KEY in value:
        values = value[SWEEP_KEY]
        if set(value) != {SWEEP_KEY}:
            raise ValueError(
                f"{section_name}: {key.label}: a swept key takes only `values:`, got keys "
                f"{', '.join(map(str, value))}"
            )
        if not isinstance(values, list) or not values:
            raise ValueError(f"{section_name}: {key.label}: `values` must be a non-empty list")
        return Param(key, tuple(values), swept=True)
    return Param(key, (value,), swept=False)


def _config_key_params(path: tuple[str, ...], value: Any, section_name: str) -> list[SpelledParam]:
    dotted = ".".join(path)
    if isinstance(value, dict) and SWEEP_KEY not in value:
        if not value:
            raise ValueError(f"{section_name}: {dotted}: an empty mapping sets nothing")
        return [
            entry
            for inner_key, inner_value in value.items()
            for entry in _config_key_params((*path, str(inner_key)), inner_value, section_name)
        ]
    return [(path, _leaf(ConfigKey(dotted), value, section_name))]


def _pattern_c_params(field: Any, key: str, value: Any, section_name: str) -> list[SpelledParam]:
    if not (isinstance(value, dict) and SWEEP_KEY not in value):
        leaf = _leaf(PatternC(field, None), value, section_name)
        return [((key,), _fixed_c_is_one_value((key,), leaf, section_name))]
    params = []
    for pattern, spec in value.items():
        if isinstance(spec, dict) and SWEEP_KEY not in spec:
            raise ValueError(
                f"{section_name}: {key}[{pattern}]: give a C or {{values: [...]}}, not a mapping"
            )
        leaf = _leaf(PatternC(field, str(pattern)), spec, section_name)
        path = (key, str(pattern))
        params.append((path, _fixed_c_is_one_value(path, leaf, section_name)))
    return params


def _fixed_c_is_one_value(path: tuple[str, ...], param: Param, section_name: str) -> Param:
    """A C is one integer, so a fixed list of Cs is research-code syntax for a sweep."""
    value = param.values[0]
    if not param.swept and isinstance(value, list):
        raise ValueError(
            f"{section_name}: {param.label}: a C is one integer, got the list "
            f"{json.dumps(value)}; {sweep_hint(path, value)}"
        )
    return param
