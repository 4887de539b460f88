"""The sweep file: which config keys a sweep fixes and which it varies, per experiment.

The syntax is documented for users in sweeps/README.md. In short: a top-level `global:` section
and one section per registry experiment; a leaf `{values: [...]}` is swept, any other value is
fixed, nested mappings and dotted keys are the same keys, and `C` / `identity_C` address the C of
the config's `[pattern, C]` entries. Sections are parsed on load, so a malformed file fails
before any job is expanded.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.params import PATTERN_C_KEYS, ConfigKey, Param, ParamKey, PatternC
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

    def params_for(self, experiment: str) -> list[Param]:
        """The experiment's parameters: `global` merged with its own section, in file order."""
        merged = flatten_section(self.global_section, GLOBAL_SECTION)
        merged.update(flatten_section(self.experiments.get(experiment, {}), experiment))
        return list(merged.values())


def load_sweep_file(path: Path) -> SweepFile:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepFileError(f"sweep file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise SweepFileError(f"sweep file {path} is not valid YAML: {e}") from None
    try:
        return SweepFile.model_validate(data if data is not None else {})
    except ValidationError as e:
        raise SweepFileError(f"sweep file {path}:\n{format_errors(e)}") from None


def format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "experiments")
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}" if where else f"  {message}")
    return "\n".join(lines)


def flatten_section(section: dict[str, Any], section_name: str) -> dict[ParamKey, Param]:
    """{key: Param} of one section, in file order. Dotted and nested spellings of a key agree."""
    if not isinstance(section, dict):
        raise ValueError(  # noqa: TRY004 -- raised inside a pydantic validator
            f"section {section_name!r} must be a mapping of config keys"
        )
    params: dict[ParamKey, Param] = {}
    for key, value in section.items():
        if key in PATTERN_C_KEYS:
            for param in _pattern_c_params(PATTERN_C_KEYS[key], key, value, section_name):
                params[param.key] = param
        else:
            for param in _config_key_params(str(key), value, section_name):
                params[param.key] = param
    return params


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


def _config_key_params(dotted: str, value: Any, section_name: str) -> list[Param]:
    if isinstance(value, dict) and SWEEP_KEY not in value:
        if not value:
            raise ValueError(f"{section_name}: {dotted}: an empty mapping sets nothing")
        return [
            param
            for inner_key, inner_value in value.items()
            for param in _config_key_params(f"{dotted}.{inner_key}", inner_value, section_name)
        ]
    return [_leaf(ConfigKey(dotted), value, section_name)]


def _pattern_c_params(field: Any, key: str, value: Any, section_name: str) -> list[Param]:
    if not (isinstance(value, dict) and SWEEP_KEY not in value):
        return [_leaf(PatternC(field, None), value, section_name)]
    params = []
    for pattern, spec in value.items():
        if isinstance(spec, dict) and SWEEP_KEY not in spec:
            raise ValueError(
                f"{section_name}: {key}[{pattern}]: give a C or {{values: [...]}}, not a mapping"
            )
        params.append(_leaf(PatternC(field, str(pattern)), spec, section_name))
    return params
