"""Where jobs run: the interface of the SLURM and local backends.

A job is a `JobRecord` (its entry in the manifest) and a zero-argument callable that submitit
pickles and runs (for a grid sweep, orchestrator.backends.job.DecompositionJob; an Optuna agent is another
callable). A backend starts jobs and records on each record where its attempt runs (backend,
scheduler id, log path, attempts); orchestrator.backends.track reads the states back from the run
directories, submitit's result files and the scheduler.
"""

from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.state.sweep_dir import JobRecord, JobState, Manifest, SweepDir

Call = Callable[[], Any]


class SubmissionError(RuntimeError):
    """The scheduler refused a submission; the message says why."""


class Backend(Protocol):
    name: str

    def plan(self, sweep: SweepDir, n_jobs: int) -> list[str]:
        """A dry run: prepare what submitting n_jobs jobs would use, and say what that is
        (SLURM: the rendered array scripts)."""

    def submit(
        self, sweep: SweepDir, manifest: Manifest, jobs: list[tuple[JobRecord, Call]]
    ) -> None:
        """Hand the jobs (records of `manifest`) over: SLURM all at once, writing the manifest
        ahead of each sbatch; local: queued, started N at a time."""

    def advance(self, sweep: SweepDir) -> None:
        """Called while waiting: start queued jobs when there is room (local); SLURM: nothing."""

    def stop(self) -> None:
        """The orchestrator is stopping before its jobs finished: stop what cannot outlive it."""


def mark_started(
    record: JobRecord, backend: str, scheduler_id: str, log_path: str, state: JobState
) -> None:
    """Record a new attempt of `record` on `backend`."""
    record.backend = backend  # type: ignore[assignment]
    if backend == "slurm":
        record.slurm_job_id, record.local_job_id = scheduler_id, None
    else:
        record.local_job_id, record.slurm_job_id = scheduler_id, None
    record.log_path = log_path
    record.attempts += 1
    record.state = state
    record.error = None
