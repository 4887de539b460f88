"""Loading configs from YAML files or experiment names, with dotted `key=value` overrides.

The orchestrator builds every job's config with these same functions, so a config that loads
here is exactly what a job runs.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from spd.config import Config
from spd.registry import EXPERIMENTS
from spd.yaml_loading import MappingDumper, parse_yaml_document


class ConfigError(ValueError):
    """A config that cannot be loaded, with a message meant for the user."""


def load_raw_config(source: str | Path) -> dict[str, Any]:
    """The YAML dict of a config file, or of a registry experiment given by name."""
    path = EXPERIMENTS[str(source)].config_path if str(source) in EXPERIMENTS else Path(source)
    if not path.exists():
        raise ConfigError(
            f"{source!s} is neither a config file nor an experiment ({', '.join(EXPERIMENTS)})"
        )
    if path.is_dir():
        raise ConfigError(f"{path} is a directory: give a config YAML file or an experiment name")
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a YAML mapping (key: value lines)")
    return data


def read_yaml_file(path: Path, what: str = "") -> Any:
    """The YAML document in a file the user named (`what`: "sweep file", ...), or a ConfigError
    that says in one line what is wrong with the file."""
    name = f"{what} {path}".strip()
    if not path.exists():
        raise ConfigError(f"{name} does not exist")
    if path.is_dir():
        raise ConfigError(f"{name} is a directory, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{name} cannot be read ({e.strerror})") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, where: str) -> Any:
    try:
        return parse_yaml_document(text, where)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "not YAML"
        raise ConfigError(f"{where}: malformed YAML{at}: {problem}") from None


def set_dotted(data: dict[str, Any], dotted_key: str, value: Any) -> dict[str, Any]:
    """A copy of `data` with `a.b.c` set to value; missing intermediate mappings are created."""
    head, _, rest = dotted_key.partition(".")
    out = dict(data)
    if not rest:
        out[head] = value
        return out
    inner = out.get(head) or {}
    if not isinstance(inner, dict):
        raise ConfigError(f"cannot set {dotted_key!r}: {head!r} is not a mapping")
    out[head] = set_dotted(inner, rest, value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """'losses.importance_minimality.coeff=1e-3' -> (key, 0.001); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or "" in key.split("."):
        raise ConfigError(f"override {text!r} is not of the form key=value (key: a.b.c)")
    return key, parse_yaml(value, f"override {text!r}")


def set_pattern_c(data: dict[str, Any], field: str, pattern: str, c: Any) -> dict[str, Any]:
    """A copy of `data` with the C of one `[pattern, C]` entry of `field` replaced."""
    entries = data.get(field) or []
    patterns = [entry[0] for entry in entries if isinstance(entry, list | tuple)]
    if pattern not in patterns:
        raise ConfigError(
            f"pattern {pattern!r} is not in {field}; the config has: {', '.join(patterns) or 'none'}"
        )
    out = dict(data)
    out[field] = [[p, c] if p == pattern else [p, old] for p, old in entries]
    return out


def validate_config(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None


def error_message(item: ErrorDetails) -> str:
    """pydantic's message of one error, without the "Value error, " it puts before ours."""
    return item["msg"].removeprefix("Value error, ")


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, `key: what is wrong` (like spd.validate's problems)."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        message = error_message(item)
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


def load_config(source: str | Path, overrides: list[str] | None = None) -> Config:
    data = load_raw_config(source)
    for text in overrides or []:
        key, value = parse_override(text)
        data = set_dotted(data, key, value)
    return validate_config(data)


def config_to_yaml(config: Config) -> str:
    """The config as YAML that loads back to it."""
    return MappingDumper().dump(config.model_dump(mode="json"))
