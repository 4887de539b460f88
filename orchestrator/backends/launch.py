"""Launching a sweep's jobs: submit what has no result yet, and follow the jobs to the end.

Running the same command again finds the same sweep directory (orchestrator.state.definition)
and submits only what is missing: jobs never submitted, and jobs that were cancelled or
interrupted. Failed jobs are resubmitted only when asked (--retry-failed); queued and running
ones are left alone. `spd-sweep resume <sweep id>` does the same from the sweep directory alone.
A SLURM submission that a previous run left unfinished (killed during sbatch) is settled first:
its array is adopted, or its jobs are submitted again (orchestrator.backends.slurm.submissions).
"""

from collections.abc import Callable

from orchestrator.backends.base import Backend, Call
from orchestrator.backends.job import DecompositionJob
from orchestrator.backends.slurm.submissions import settle_interrupted, wait_for_sbatch
from orchestrator.backends.track import Work, refresh, wait_for_jobs
from orchestrator.state.code_snapshot import code_version, snapshot_code
from orchestrator.state.sweep_dir import JobRecord, JobState, LaunchSettings, Manifest, SweepDir


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
    settled = settle_interrupted_submissions(sweep, manifest, echo)
    if refresh(sweep, manifest) or settled:
        sweep.write_manifest(manifest)
    selected = jobs_to_submit(manifest, retry_failed)
    echo(plan_text(manifest, selected, retry_failed, dry_run))
    if dry_run:
        if selected:
            for line in backend.plan(sweep, len(selected)):
                echo(line)
        echo(f"Dry run: nothing submitted. Configs: {sweep.configs}")
        return manifest
    calls = [(r, DecompositionJob(sweep.path, r.job_id)) for r in selected]
    return submit_and_follow(sweep, manifest, backend, settings, calls, wait, poll_interval_s, echo)


def settle_interrupted_submissions(
    sweep: SweepDir, manifest: Manifest, echo: Callable[[str], None]
) -> bool:
    """Adopt the arrays that an interrupted run submitted without recording them, or mark their
    jobs cancelled if they never reached SLURM, after waiting for an sbatch that outlived the
    run; says which. Returns whether any job changed."""
    wait_for_sbatch(sweep, manifest.jobs, echo)
    lines = settle_interrupted(sweep, manifest.jobs)
    for line in lines:
        echo(line)
    return bool(lines)


def submit_and_follow(
    sweep: SweepDir,
    manifest: Manifest,
    backend: Backend,
    settings: LaunchSettings,
    calls: list[tuple[JobRecord, Call]],
    wait: bool,
    poll_interval_s: float,
    echo: Callable[[str], None],
    work: Work | None = None,
) -> Manifest:
    """Record how the sweep (or search) was launched (the meta's history), snapshot the code
    once, submit `calls`, and (with `wait`) follow the jobs to the end, the bar counting `work`
    when given (a search: its trials); Ctrl-C says how to continue."""
    meta = sweep.read_meta()
    sweep.write_meta(meta.model_copy(update={"launches": [*meta.launches, settings]}))
    if calls:
        if not sweep.code.exists():
            version = code_version()
            snapshot_code(sweep.code, version)
            sweep.write_meta(sweep.read_meta().model_copy(update={"code_version": version}))
        try:
            backend.submit(sweep, manifest, calls)
        finally:
            sweep.write_manifest(manifest)
    if not wait:
        return manifest
    try:
        return wait_for_jobs(sweep, manifest, backend, poll_interval_s, work)
    except KeyboardInterrupt:
        backend.stop()
        refresh(sweep, manifest)
        sweep.write_manifest(manifest)
        jobs = "Local jobs were stopped" if backend.name == "local" else "SLURM jobs keep running"
        echo(f"\nStopped. {jobs}; continue with: spd-sweep resume {sweep.sweep_id}")
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
