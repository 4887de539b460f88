"""Job states: read from the run directories, submitit's result files and the scheduler.

- a run directory with summary.json: completed (nothing else is consulted);
- submitit's result file holds an error: failed, with the exception's last line;
- otherwise the scheduler says: SLURM through sacct (submitit's watcher), a local job through
  its process. A local job whose process is gone without a result was interrupted: cancelled.
  A SLURM job left `submitting` by an interrupted submission gets its array once squeue or sacct
  show it, or is cancelled if it never reached SLURM (orchestrator.backends.slurm.submissions).
Finished states (completed, failed, cancelled) are final for an attempt and not asked again.
"""

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm

from orchestrator.backends import submitit_adapter
from orchestrator.backends.base import Backend
from orchestrator.backends.slurm.submissions import settle_interrupted
from orchestrator.state.sweep_dir import JobRecord, JobState, Manifest, SweepDir
from spd.progress import Progress, duration_text, read_progress

FINISHED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

SLURM_QUEUED = frozenset(
    {
        "PENDING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "CONFIGURING",
        "RESIZING",
        "SUSPENDED",
        "PREEMPTED",
        "UNKNOWN",
    }
)
"""UNKNOWN: not in sacct yet (just submitted). PREEMPTED: about to be requeued."""
SLURM_RUNNING = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED"})


def refresh(sweep: SweepDir, manifest: Manifest) -> list[JobRecord]:
    """Bring every unfinished job's state up to date; returns the jobs whose state changed."""
    unfinished = [r for r in manifest.jobs if r.state not in FINISHED]
    before = [(r.state, r.error, r.slurm_job_id) for r in unfinished]
    settle_interrupted(sweep, unfinished)
    slurm_states = submitit_adapter.sacct_states(
        [r.slurm_job_id for r in unfinished if r.backend == "slurm" and r.slurm_job_id]
    )
    changed = []
    for record, previous in zip(unfinished, before, strict=True):
        record.state, record.error = observed_state(sweep, record, slurm_states)
        if (record.state, record.error, record.slurm_job_id) != previous:
            changed.append(record)
    return changed


def observed_state(
    sweep: SweepDir, record: JobRecord, slurm_states: dict[str, str]
) -> tuple[JobState, str | None]:
    if sweep.run_dir(record.job_id).is_complete():
        return JobState.COMPLETED, None
    if record.scheduler_id is None or record.log_path is None:
        return record.state, record.error  # not started: pending (or queued locally)
    outcome = read_outcome(sweep, record)
    if outcome is not None and outcome[0] == "error":
        return JobState.FAILED, last_line(str(outcome[1]))
    if outcome is not None and record.run_dir is None:
        return JobState.COMPLETED, None  # a search agent: done when its process returned
    if record.backend == "local":
        if process_alive(int(record.scheduler_id)):
            return JobState.RUNNING, None
        return JobState.CANCELLED, "the process ended without a result (interrupted?)"
    return slurm_state(slurm_states.get(record.scheduler_id, "UNKNOWN"))


def slurm_state(sacct_state: str) -> tuple[JobState, str | None]:
    state = sacct_state.split()[0] if sacct_state.strip() else "UNKNOWN"  # "CANCELLED by 0"
    if state in SLURM_QUEUED:
        return JobState.SUBMITTED, None
    if state in SLURM_RUNNING:
        return JobState.RUNNING, None
    if state == "CANCELLED":
        return JobState.CANCELLED, "cancelled in SLURM"
    if state == "COMPLETED":
        return JobState.FAILED, "SLURM says COMPLETED but the run wrote no summary.json"
    return JobState.FAILED, f"SLURM state {state}"


def read_outcome(sweep: SweepDir, record: JobRecord) -> submitit_adapter.Outcome | None:
    """The outcome of the record's last attempt, once written (its folder holds the log)."""
    assert record.log_path is not None and record.scheduler_id is not None
    folder = (sweep.path / record.log_path).parent
    return submitit_adapter.read_outcome(folder, record.scheduler_id)


def last_line(traceback_text: str) -> str:
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "failed (no traceback)"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


def state_counts(manifest: Manifest) -> Counter[JobState]:
    return Counter(record.state for record in manifest.jobs)


def progress_text(counts: Counter[JobState]) -> str:
    queued = counts[JobState.PENDING] + counts[JobState.SUBMITTING] + counts[JobState.SUBMITTED]
    text = (
        f"queued {queued}, running {counts[JobState.RUNNING]}, "
        f"done {counts[JobState.COMPLETED]}, failed {counts[JobState.FAILED]}"
    )
    return text + (
        f", cancelled {counts[JobState.CANCELLED]}" if counts[JobState.CANCELLED] else ""
    )


def failure_text(sweep: SweepDir, record: JobRecord) -> str:
    log = f"\n    log: {sweep.path / record.log_path}" if record.log_path else ""
    return f"{record.state.value.upper()} {record.name} [{record.job_id}]: {record.error}{log}"


@dataclass(frozen=True)
class Work:
    """What the jobs work through, when that is not the jobs themselves: a search's agents
    work through its trials. The progress bar counts it."""

    unit: str
    total: int
    done: Callable[[], int]


def wait_for_jobs(
    sweep: SweepDir,
    manifest: Manifest,
    backend: Backend,
    poll_interval_s: float,
    work: Work | None = None,
    echo: Callable[[str], None] = tqdm.write,
) -> Manifest:
    """Follow the jobs until every one finished, with a progress bar; failed jobs are reported
    (with their log) as they fail while the others go on. The manifest is saved on each change.
    The bar counts finished jobs, or `work` when given, and shows the job states and the
    training steps of the started jobs."""
    unit, total = (work.unit, work.total) if work else ("job", len(manifest.jobs))
    bar = tqdm(total=total, desc=sweep.sweep_id, unit=unit, dynamic_ncols=True)
    steps = StepTally()
    try:
        while True:
            backend.advance(sweep)
            changed = refresh(sweep, manifest)
            if changed:
                sweep.write_manifest(manifest)
            for record in changed:
                if record.state in (JobState.FAILED, JobState.CANCELLED):
                    echo(failure_text(sweep, record))
            counts = state_counts(manifest)
            n_finished = sum(counts[state] for state in FINISHED)
            bar.n = min(work.done(), total) if work else n_finished
            bar.set_postfix_str(
                ", ".join(filter(None, [progress_text(counts), steps.text(sweep, manifest)])),
                refresh=True,
            )
            if n_finished == len(manifest.jobs):
                return manifest
            time.sleep(poll_interval_s)
    finally:
        bar.close()


class StepTally:
    """Training steps done over the steps of the jobs that started, from their progress files
    (spd.progress): how far a sweep of long jobs is, which the count of finished jobs does not
    say. Each poll reads the running jobs' files; a finished job's is read once."""

    def __init__(self) -> None:
        self._finished: dict[str, tuple[int, int]] = {}

    def text(self, sweep: SweepDir, manifest: Manifest) -> str:
        done = total = 0
        for record in manifest.jobs:
            counted = self._finished.get(record.job_id)
            if counted is None and record.state in FINISHED | {JobState.RUNNING}:
                progress = read_progress(sweep.run_dir(record.job_id).progress)
                if progress is not None:
                    counted = (progress.step, progress.steps)
                    if record.state in FINISHED:
                        self._finished[record.job_id] = counted
            if counted is not None:
                done, total = done + counted[0], total + counted[1]
        return f"steps {done}/{total} of the started jobs" if total else ""


def progress_cells(progress: Progress | None, state: JobState) -> tuple[str, str, str]:
    """STEP, LOSS and ETA of a job; the ETA only while it runs (a stopped run's is stale)."""
    if progress is None:
        return "-", "-", "-"
    loss = "-" if progress.loss is None else f"{progress.loss:.3g}"
    eta = "-"
    if state == JobState.RUNNING and progress.eta_s is not None:
        eta = duration_text(progress.eta_s)
    return f"{progress.step}/{progress.steps}", loss, eta


def status_table(sweep: SweepDir, manifest: Manifest) -> str:
    """One line per job: id, name, state, attempts, its run's progress (steps done, latest loss,
    ETA; "-" before the run wrote any), scheduler id, then its summary or its log."""
    header = (
        "JOB", "NAME", "STATE", "TRIES", "STEP", "LOSS", "ETA", "SCHEDULER ID", "SUMMARY / LOG"
    )
    rows = []
    for record in manifest.jobs:
        run_dir = sweep.run_dir(record.job_id)
        where = (
            run_dir.summary
            if record.state == JobState.COMPLETED
            else (sweep.path / record.log_path if record.log_path else "")
        )
        rows.append(
            (
                record.job_id,
                record.name,
                record.state.value,
                str(record.attempts),
                *progress_cells(read_progress(run_dir.progress), record.state),
                record.scheduler_id or "",
                str(where),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row, record in zip([header, *rows], [None, *manifest.jobs], strict=True):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
        if record is not None and record.error and record.state != JobState.COMPLETED:
            lines.append(f"    {record.error}")
    return "\n".join(lines)
