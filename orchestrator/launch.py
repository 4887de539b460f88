"""Launching a sweep: validated jobs -> a sweep directory -> submit what has no result yet.

The sweep id is derived from what the jobs compute (a readable label, the job suffix, and the
hash of all job ids), so running the same command again finds the same sweep directory and
submits only what is missing: jobs never submitted, and jobs that were cancelled or interrupted.
Failed jobs are resubmitted only when asked (--retry-failed); queued and running ones are left
alone. `spd-sweep --resume <sweep id>` does the same from the sweep directory alone.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.code_snapshot import code_version, snapshot_code
from orchestrator.job import DecompositionJob
from orchestrator.slurm_backend import SlurmBackend
from orchestrator.submit import Backend, Call
from orchestrator.sweep_dir import (
    JobRecord,
    JobState,
    LaunchSettings,
    Manifest,
    SweepDir,
    SweepMeta,
    sweeps_root,
)
from orchestrator.track import refresh, wait_for_jobs
from orchestrator.validate import ValidatedJob
from spd.atomic_io import atomic_write_text
from spd.run import config_to_yaml

UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SweepDefinition:
    """Everything that decides which jobs a sweep has."""

    kind: Literal["evaluation", "grid"]
    label: str
    """'eval', or the sweep file's stem."""
    jobs: list[ValidatedJob]
    command: list[str]
    sweep_file: Path | None = None
    job_suffix: str | None = None
    project: str | None = None


def sweep_id_for(label: str, job_suffix: str | None, job_ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(job_ids)).encode()).hexdigest()[:8]
    parts = [label, job_suffix, digest] if job_suffix else [label, digest]
    return "-".join(UNSAFE_ID_CHARACTERS.sub("_", part).strip("_") or "_" for part in parts)


def open_sweep(sweep_ref: str) -> SweepDir:
    """A sweep by id (under the runs root) or by path."""
    for candidate in (Path(sweep_ref), sweeps_root() / sweep_ref):
        if (candidate / "meta.json").is_file():
            return SweepDir(candidate.absolute())
    known = sorted(p.name for p in sweeps_root().glob("*") if (p / "meta.json").is_file())
    raise FileNotFoundError(
        f"no sweep {sweep_ref!r} under {sweeps_root().absolute()}"
        + (f"; sweeps there: {', '.join(known)}" if known else "")
    )


def sweep_dir_of(definition: SweepDefinition) -> SweepDir:
    sweep_id = sweep_id_for(
        definition.label, definition.job_suffix, [j.job_id for j in definition.jobs]
    )
    return SweepDir((sweeps_root() / sweep_id).absolute())


def write_sweep(definition: SweepDefinition) -> tuple[SweepDir, Manifest]:
    """Create the sweep directory, or bring an existing one (same jobs) up to date."""
    sweep = sweep_dir_of(definition)
    sweep_id = sweep.sweep_id
    if sweep.meta_path.exists():
        meta = sweep.read_meta().model_copy(update={"project": definition.project})
    else:
        meta = SweepMeta(
            sweep_id=sweep_id,
            kind=definition.kind,
            command=definition.command,
            code_version=code_version(),
            project=definition.project,
        )
        if definition.sweep_file is not None:
            atomic_write_text(sweep.sweep_file, definition.sweep_file.read_text())
    sweep.write_meta(meta)
    previous = {record.job_id: record for record in sweep.read_manifest().jobs}
    records = []
    for job in definition.jobs:
        # Run names and tags say where a run logs; they are not part of the job id.
        config = job.config.model_copy(
            update={"wandb_run_name": job.name, "wandb_tags": [sweep_id, job.experiment]}
        )
        atomic_write_text(sweep.config_path(job.job_id), config_to_yaml(config))
        record = previous.get(job.job_id) or JobRecord(
            job_id=job.job_id,
            name=job.name,
            experiment=job.experiment,
        )
        record.name, record.params = job.name, job.params
        record.config_path = sweep.relative(sweep.config_path(job.job_id))
        record.run_dir = sweep.relative(sweep.run_dir(job.job_id).path)
        records.append(record)
    manifest = Manifest(jobs=records)
    sweep.write_manifest(manifest)
    return sweep, manifest


def jobs_to_submit(manifest: Manifest, retry_failed: bool) -> list[JobRecord]:
    wanted = {JobState.PENDING, JobState.CANCELLED} | ({JobState.FAILED} if retry_failed else set())
    return [record for record in manifest.jobs if record.state in wanted]


def launch(
    sweep: SweepDir,
    manifest: Manifest,
    backend: Backend,
    settings: LaunchSettings,
    *,
    dry_run: bool,
    retry_failed: bool,
    wait: bool,
    poll_interval_s: float,
    echo: Callable[[str], None],
) -> Manifest:
    """Submit the sweep's jobs that have no result yet and (with `wait`) follow them to the end."""
    if refresh(sweep, manifest):
        sweep.write_manifest(manifest)
    selected = jobs_to_submit(manifest, retry_failed)
    echo(plan_text(manifest, selected, retry_failed, dry_run))
    if dry_run:
        if isinstance(backend, SlurmBackend) and selected:
            for chunk, script in backend.write_scripts(sweep, len(selected)):
                echo(f"Rendered {script} (jobs {chunk.start}-{chunk.stop - 1} of this submission)")
        echo(f"Dry run: nothing submitted. Configs: {sweep.configs}")
        return manifest
    calls = [(r, DecompositionJob(sweep.path, r.job_id)) for r in selected]
    return submit_and_follow(sweep, manifest, backend, settings, calls, wait, poll_interval_s, echo)


def submit_and_follow(
    sweep: SweepDir,
    manifest: Manifest,
    backend: Backend,
    settings: LaunchSettings,
    calls: list[tuple[JobRecord, Call]],
    wait: bool,
    poll_interval_s: float,
    echo: Callable[[str], None],
) -> Manifest:
    """Record how the sweep (or search) was launched, snapshot the code once, submit `calls`,
    and (with `wait`) follow the jobs to the end; Ctrl-C says how to continue."""
    sweep.write_meta(sweep.read_meta().model_copy(update={"launch": settings}))
    if calls:
        if not sweep.code.exists():
            version = code_version()
            snapshot_code(sweep.code, version)
            sweep.write_meta(sweep.read_meta().model_copy(update={"code_version": version}))
        try:
            backend.submit(sweep, calls)
        finally:
            sweep.write_manifest(manifest)
    if not wait:
        return manifest
    try:
        return wait_for_jobs(sweep, manifest, backend, poll_interval_s)
    except KeyboardInterrupt:
        backend.stop()
        refresh(sweep, manifest)
        sweep.write_manifest(manifest)
        jobs = "Local jobs were stopped" if backend.name == "local" else "SLURM jobs keep running"
        echo(f"\nStopped. {jobs}; continue with: spd-sweep --resume {sweep.sweep_id}")
        raise


def plan_text(
    manifest: Manifest, selected: list[JobRecord], retry_failed: bool, dry_run: bool
) -> str:
    counts: dict[JobState, int] = {}
    for record in manifest.jobs:
        counts[record.state] = counts.get(record.state, 0) + 1
    others = ", ".join(f"{n} {state.value}" for state, n in counts.items() if n)
    verb = "Would submit" if dry_run else "Submitting"
    text = f"{verb} {len(selected)} of {len(manifest.jobs)} jobs ({others})."
    if counts.get(JobState.FAILED) and not retry_failed:
        text += " Failed jobs are not resubmitted without --retry-failed."
    return text
