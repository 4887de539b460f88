"""Which config a run directory belongs to: the fingerprint of the fields that change results.

Every field of the config changes what a run computes, except those in RESULT_NEUTRAL_FIELDS:
how often it logs, reports progress, draws figures and saves checkpoints (a resumed run is
bit-identical whatever the checkpoint cadence), its W&B names, and the user's figure callables.
A run directory records its fingerprint (`fingerprint.json`); running another config into it is
an error that names the keys that differ, while a change of result-neutral fields only resumes
(or returns) the run.
`steps` is not neutral: the learning-rate schedule and the p annealing are fractions of it, so
a run cannot be extended by raising it.
"""

import hashlib
import json
from typing import Any

from spd.config import Config
from spd.strict_model import StrictModel

RESULT_NEUTRAL_FIELDS = frozenset(
    {
        "log_freq",
        "image_freq",
        "image_on_first_step",
        "save_freq",
        "progress_interval_s",
        "wandb_project",
        "wandb_run_name",
        "wandb_tags",
        "user_figures",
    }
)
FINGERPRINT_LENGTH = 12


class RunFingerprint(StrictModel):
    """fingerprint.json of a run directory."""

    fingerprint: str
    fields: dict[str, Any]
    """The result-relevant fields, flattened to dotted keys, as JSON values."""


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def fingerprint_of(config: Config) -> RunFingerprint:
    fields = {
        key: value
        for key, value in config.model_dump(mode="json").items()
        if key not in RESULT_NEUTRAL_FIELDS
    }
    flat = flatten(fields)
    canonical = json.dumps(flat, sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_LENGTH]
    return RunFingerprint(fingerprint=digest, fields=flat)


def differences(old: RunFingerprint, new: RunFingerprint) -> list[str]:
    """'key: old -> new' for every result-relevant key that differs (sorted by key)."""
    missing = object()
    keys = sorted(set(old.fields) | set(new.fields))
    lines = []
    for key in keys:
        before, after = old.fields.get(key, missing), new.fields.get(key, missing)
        if before != after:
            lines.append(f"{key}: {show(before, missing)} -> {show(after, missing)}")
    return lines


def show(value: Any, missing: object) -> str:
    return "(unset)" if value is missing else json.dumps(value)
