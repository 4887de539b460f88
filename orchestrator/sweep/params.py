"""A parameter of a sweep: the config key it sets, its values, and how it is named.

Two kinds of key:
- `ConfigKey("task_config.feature_probability")`: a (dotted) key of the config;
- `PatternC("target_module_patterns", "linear1")`: the C of one `[pattern, C]` entry, or of every
  entry of that field when `pattern` is None.

Labels are the parameter's name in the manifest and in run names: the dotted key, or `C[pattern]`
(`identity_C[pattern]` for identity patterns), or `C` / `identity_C` for every pattern at once.
"""

import json
from dataclasses import dataclass
from typing import Any, Literal

from spd.config_loading import ConfigError, set_dotted, set_pattern_c

PatternField = Literal["target_module_patterns", "identity_module_patterns"]

PATTERN_C_KEYS: dict[str, PatternField] = {
    "C": "target_module_patterns",
    "identity_C": "identity_module_patterns",
}
"""Sweep-file keys that set C per pattern, and the config field whose patterns they address."""


@dataclass(frozen=True)
class ConfigKey:
    dotted: str

    @property
    def label(self) -> str:
        return self.dotted

    def apply(self, data: dict[str, Any], value: Any) -> dict[str, Any]:
        return set_dotted(data, self.dotted, value)

    def contains(self, other: "ConfigKey") -> bool:
        """Whether setting this key replaces `other` too: `losses.faithfulness` holds
        `losses.faithfulness.coeff`."""
        return other.dotted.startswith(self.dotted + ".")

    def replaces(self, other: "ParamKey") -> bool:
        """Whether setting this key overwrites what setting `other` did: a key inside it, or the
        C of a pattern in the list it sets (`target_module_patterns` replaces `C[linear1]`)."""
        if isinstance(other, PatternC):
            return other.field == self.dotted or other.field.startswith(self.dotted + ".")
        return other == self or self.contains(other)


@dataclass(frozen=True)
class PatternC:
    field: PatternField
    pattern: str | None
    """None: every pattern of `field`."""

    @property
    def label(self) -> str:
        key = next(k for k, f in PATTERN_C_KEYS.items() if f == self.field)
        return key if self.pattern is None else f"{key}[{self.pattern}]"

    def apply(self, data: dict[str, Any], value: Any) -> dict[str, Any]:
        # bool is an int to Python; a C of `true` is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.label}: C must be an integer, got {value!r}")
        if self.pattern is not None:
            return set_pattern_c(data, self.field, self.pattern, value)
        entries = data.get(self.field) or []
        if not entries:
            raise ConfigError(f"{self.label}: the config has no {self.field} to set C for")
        return {**data, self.field: [[entry[0], value] for entry in entries]}


ParamKey = ConfigKey | PatternC


@dataclass(frozen=True)
class Param:
    key: ParamKey
    values: tuple[Any, ...]
    swept: bool
    """Swept: one job per value. Fixed: a single value that every job gets."""

    @property
    def label(self) -> str:
        return self.key.label


def apply_params(data: dict[str, Any], assignment: list[tuple[ParamKey, Any]]) -> dict[str, Any]:
    """`data` with every (key, value) set: config keys in the given order, then the C of patterns,
    so that a sweep can replace a pattern list and set the C of its entries in the same file."""
    for key, value in sorted(assignment, key=lambda kv: isinstance(kv[0], PatternC)):
        data = key.apply(data, value)
    return data


def format_value(value: Any) -> str:
    """Compact text of a parameter value for run names: 0.001, 3e-05, [16,16], null.

    A float is its shortest text that reads back as the same float (`repr`): as short as the
    YAML it came from, and two different values never share a name, as they did with `%g`
    (0.0012345671 and 0.0012345674 were both 0.00123457)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
