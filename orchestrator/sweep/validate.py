"""Every job's config validated by the training core (spd.validate) before anything is submitted.

All problems are reported at once, grouped by message, with the parameters of the jobs they
affect. A valid job gets its stable id: the hash of its resolved config (without the W&B fields,
which say where a run logs, not what it computes).
"""

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from orchestrator.sweep.expand import JobSpec
from orchestrator.sweep.params import format_value
from spd.batch_split import check_batch_split
from spd.config_loading import ConfigError, validate_config
from spd.entry_texts import EntryTexts
from spd.structure_cache import StructureCache
from spd.validate import Validator, raise_problems

JOB_COUNT_CONFIRM_THRESHOLD = 1000
"""Sweeps with more jobs than this are only submitted with --yes."""

TRACKING_FIELDS = frozenset({"wandb_project", "wandb_run_name", "wandb_tags"})
"""Config fields left out of the job id."""

EXAMPLES_PER_PROBLEM = 3


class SweepValidationError(ValueError):
    """Jobs that cannot run, or a sweep that needs confirmation; the message is for the user."""


@dataclass(frozen=True)
class ValidatedJob:
    job_id: str
    name: str
    experiment: str
    params: dict[str, Any]
    config_values: dict[str, Any]
    """The validated config as JSON values (`Config.model_dump(mode="json")`): what the job id
    hashes and the job's config file holds. Not the Config: 10,000 of those take three times
    the memory, and each would be dumped again to be written."""


class JobIds:
    """Job ids of many similar configs: the hash of `json.dumps(values, sort_keys=True)` (all
    but TRACKING_FIELDS), written field by field with each field's text memoized
    (spd.entry_texts), since a sweep's configs share all but a few values."""

    def __init__(self) -> None:
        self._entry_texts = EntryTexts(json_entry)

    def __call__(self, config_values: dict[str, Any]) -> str:
        entries = ", ".join(
            self._entry_texts(
                (key, config_values[key])
                for key in sorted(config_values)
                if key not in TRACKING_FIELDS
            )
        )
        return hashlib.sha256(f"{{{entries}}}".encode()).hexdigest()[:12]


def json_entry(key: str, value: Any) -> str:
    """`"key": value` as json.dumps(..., sort_keys=True) writes it in a mapping."""
    return json.dumps({key: value}, sort_keys=True)[1:-1]


def validate_jobs(
    specs: list[JobSpec], check_device_here: bool, world_size: int = 1
) -> list[ValidatedJob]:
    """The jobs with their validated configs, or SweepValidationError listing every problem.

    Each config goes through the training core's whole validation (spd.validate: module
    patterns, identities and tied pairs resolved against the target's module tree, devices,
    files, user code); `check_device_here` also checks that its device exists on this machine
    (local jobs), not only its spelling (jobs that run on a cluster's nodes). A job that runs
    in `world_size` processes (data parallel) must have a batch_size they split evenly.
    Structures resolved by an earlier command come from the core's cache (spd.structure_cache):
    the seconds of importing torch are paid once per structure and code version."""
    problems: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    valid: list[ValidatedJob] = []
    validator = Validator(check_device_here, StructureCache())
    job_id = JobIds()
    for spec in specs:
        if spec.raw_config is None:
            problems[(spec.experiment, spec.error or "no config")].append(spec.params)
            continue
        try:
            config = validate_config(spec.raw_config)
            raise_problems(validator(config))
            check_batch_split(config.batch_size, world_size)
        except ConfigError as e:
            problems[(spec.experiment, str(e))].append(spec.params)
            continue
        values = config.model_dump(mode="json")
        valid.append(ValidatedJob(job_id(values), spec.name, spec.experiment, spec.params, values))
    by_id: dict[str, list[ValidatedJob]] = defaultdict(list)
    for job in valid:
        by_id[job.job_id].append(job)
    for same in by_id.values():
        if len(same) > 1:
            message = "these jobs have identical configs (a value listed twice?)"
            problems[(same[0].experiment, message)].extend(job.params for job in same)
    if problems:
        n_bad = sum(len(params) for params in problems.values())
        raise SweepValidationError(format_problems(problems, n_bad, len(specs)))
    return valid


def format_params(params: dict[str, Any]) -> str:
    if not params:
        return "the experiment's config"
    return ", ".join(f"{label}={format_value(value)}" for label, value in params.items())


def format_problems(
    problems: dict[tuple[str, str], list[dict[str, Any]]], n_bad: int, n_jobs: int
) -> str:
    lines = [f"{n_bad} of {n_jobs} jobs cannot run; nothing was submitted:"]
    for (experiment, message), params in problems.items():
        examples = "; ".join(format_params(p) for p in params[:EXAMPLES_PER_PROBLEM])
        more = (
            f"; and {len(params) - EXAMPLES_PER_PROBLEM} more"
            if len(params) > EXAMPLES_PER_PROBLEM
            else ""
        )
        noun = "job" if len(params) == 1 else "jobs"
        lines.append(f"- {experiment}, {len(params)} {noun} ({examples}{more}):")
        lines.extend(f"    {line.strip()}" for line in message.splitlines() if line.strip())
    return "\n".join(lines)


def job_count_summary(jobs: list[ValidatedJob]) -> str:
    """'6 jobs: tms_5-2 4, tms_5-2-id 2'."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.experiment] = counts.get(job.experiment, 0) + 1
    noun = "job" if len(jobs) == 1 else "jobs"
    breakdown = ", ".join(f"{experiment} {n}" for experiment, n in counts.items())
    return f"{len(jobs)} {noun}: {breakdown}"


def check_job_count(n_jobs: int, confirmed: bool) -> None:
    if n_jobs > JOB_COUNT_CONFIRM_THRESHOLD and not confirmed:
        raise SweepValidationError(
            f"this sweep has {n_jobs:,} jobs, more than {JOB_COUNT_CONFIRM_THRESHOLD:,}: "
            "pass --yes to submit them (or --dry-run to inspect them first)"
        )
