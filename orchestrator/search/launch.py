"""Launching a search: N agents (orchestrator.search.agent) on SLURM or locally, sharing a study.

The sweep directory holds the search file as given (sweep.yaml) and `search.json`: what the
agents need besides it (experiment, CLI overrides, n_trials, storage URL). The sweep id derives
from the search itself (file stem, experiment, search file, overrides), not from n_trials or the
number of agents, so the same command finds the same sweep and continues its study, and a larger
--n_trials extends it. Agents are jobs `agent-<i>` of the manifest; an agent is completed when it
found the study done and returned. On every launch the agents that are not queued or running are
submitted again while the study lacks trials. `spd-sweep resume <sweep id>` continues a search from `search.json` alone.

Open the study in optuna-dashboard (`pip install optuna-dashboard`):
    optuna-dashboard <sweep dir>/study.journal     (or the --storage URL)
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from pydantic import Field

from orchestrator.backends.base import Backend
from orchestrator.backends.launch import settle_interrupted_submissions, submit_and_follow
from orchestrator.backends.track import FINISHED, Work, refresh
from orchestrator.search.agent import AGENT_PREFIX, OptunaAgent
from orchestrator.search.spec import SearchFile, trial_config
from orchestrator.search.study import finished_trials, open_storage, open_study
from orchestrator.state.code_snapshot import code_version
from orchestrator.state.definition import sweep_id_for
from orchestrator.state.sweep_dir import (
    JobRecord,
    JobState,
    LaunchSettings,
    Manifest,
    SweepDir,
    SweepMeta,
    sweeps_root,
)
from spd.atomic_io import atomic_write_text
from spd.strict_model import StrictModel

SEARCH_SPEC_FILE = "search.json"


class SearchSpec(StrictModel):
    experiment: str
    search: SearchFile
    overrides: dict[str, Any] = Field(default_factory=dict)
    n_trials: int = Field(gt=0)
    storage_url: str | None = None


def spec_path(sweep: SweepDir) -> Path:
    return sweep.path / SEARCH_SPEC_FILE


def read_spec(sweep: SweepDir) -> SearchSpec:
    return SearchSpec.model_validate_json(spec_path(sweep).read_text())


def search_sweep_id(label: str, job_suffix: str | None, spec: SearchSpec) -> str:
    defining = spec.model_dump(mode="json", include={"experiment", "search", "overrides"})
    digest = hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()
    return sweep_id_for(label, job_suffix, [digest])


def search_sweep_dir(label: str, job_suffix: str | None, spec: SearchSpec) -> SweepDir:
    return SweepDir((sweeps_root() / search_sweep_id(label, job_suffix, spec)).absolute())


def study_of(sweep: SweepDir, spec: SearchSpec) -> optuna.Study:
    steps = trial_config(spec.experiment, spec.search, {}, spec.overrides).steps
    return open_study(sweep, spec.search, open_storage(sweep, spec.storage_url), steps)


def write_search_sweep(
    spec: SearchSpec,
    search_file: Path,
    label: str,
    job_suffix: str | None,
    n_agents: int,
    command: list[str],
    project: str | None = None,
) -> tuple[SweepDir, Manifest]:
    """Create the search's sweep directory, or update an existing one's n_trials and agents."""
    sweep = search_sweep_dir(label, job_suffix, spec)
    if not sweep.meta_path.exists():
        meta = SweepMeta(
            sweep_id=sweep.sweep_id,
            kind="optuna",
            command=command,
            code_version=code_version(),
            project=project,
        )
        sweep.write_meta(meta)
        atomic_write_text(sweep.sweep_file, search_file.read_text())
    return sweep, write_agents(sweep, spec, n_agents)


def write_agents(sweep: SweepDir, spec: SearchSpec, n_agents: int) -> Manifest:
    """Record the spec (its n_trials may have changed) and agents 0..n_agents-1, keeping the
    records of those that ran before."""
    atomic_write_text(spec_path(sweep), spec.model_dump_json(indent=2) + "\n")
    previous = {record.job_id: record for record in sweep.read_manifest().jobs}
    records = []
    for i in range(n_agents):
        job_id = f"{AGENT_PREFIX}{i}"
        # An agent has no run directory of its own: its trials have theirs.
        records.append(
            previous.get(job_id)
            or JobRecord(
                job_id=job_id, name=f"{spec.experiment}-agent{i}", experiment=spec.experiment
            )
        )
    manifest = Manifest(jobs=records)
    sweep.write_manifest(manifest)
    return manifest


def n_finished(sweep: SweepDir, spec: SearchSpec) -> int:
    """How many of the study's trials count as finished towards n_trials."""
    return len(finished_trials(study_of(sweep, spec).get_trials(deepcopy=False)))


def agents_to_submit(sweep: SweepDir, manifest: Manifest, study_done: bool) -> list[JobRecord]:
    """Pending agents, and while the study lacks trials also finished ones (started afresh)."""
    selected = []
    for record in manifest.jobs:
        if record.state == JobState.PENDING or (not study_done and record.state in FINISHED):
            # A new attempt: until it starts, the last attempt's outcome is not this agent's.
            record.state, record.error = JobState.PENDING, None
            record.slurm_job_id = record.local_job_id = record.log_path = None
            selected.append(record)
    return selected


def launch_search(
    sweep: SweepDir,
    manifest: Manifest,
    backend: Backend,
    settings: LaunchSettings,
    *,
    dry_run: bool,
    wait: bool,
    poll_interval_s: float,
    echo: Callable[[str], None],
    heartbeat: tuple[int, int] | None = None,
) -> Manifest:
    """Submit the agents the study still needs and (with `wait`) follow them to the end."""
    spec = read_spec(sweep)
    settled = settle_interrupted_submissions(sweep, manifest, echo)
    if refresh(sweep, manifest) or settled:
        sweep.write_manifest(manifest)
    n_done = n_finished(sweep, spec)
    study_done = n_done >= spec.n_trials
    verb = "Would submit" if dry_run else "Submitting"
    if dry_run:
        n_selected = sum(
            r.state == JobState.PENDING or (not study_done and r.state in FINISHED)
            for r in manifest.jobs
        )
        echo(f"Study: {n_done} of {spec.n_trials} trials finished. {verb} {n_selected} agents.")
        if n_selected:
            for line in backend.plan(sweep, n_selected):
                echo(line)
        echo(f"Dry run: nothing submitted. Search: {spec_path(sweep)}")
        return manifest
    selected = agents_to_submit(sweep, manifest, study_done)
    echo(f"Study: {n_done} of {spec.n_trials} trials finished. {verb} {len(selected)} agents.")
    calls = [
        (
            record,
            OptunaAgent(
                sweep.path,
                record.job_id,
                spec.experiment,
                spec.search,
                spec.overrides,
                spec.n_trials,
                spec.storage_url,
                heartbeat,
            ),
        )
        for record in selected
    ]
    return submit_and_follow(
        sweep,
        manifest,
        backend,
        settings,
        calls,
        wait,
        poll_interval_s,
        echo,
        work=Work("trial", spec.n_trials, lambda: n_finished(sweep, spec)),
    )
