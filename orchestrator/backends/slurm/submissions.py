"""Submitting job arrays so that a kill at any instant neither loses a job nor runs one twice.

Each array is written ahead in the manifest, in this order:
1. its script is rendered (scripts/array_NNN.sbatch), and each task's call is pickled into the
   array's staging folder, logs/array_NNN/<task>.pkl: paths that do not depend on the array id,
   so the array is complete before sbatch runs;
2. the script is locked (flock), and its jobs are recorded as `submitting`, with the script and
   their task in it (JobRecord.array_task);
3. sbatch runs, sharing the lock: an sbatch that outlives a killed orchestrator keeps the script
   locked until it returns;
4. the jobs are recorded as `submitted`, with their SLURM ids (`<array id>_<task>`), and the
   lock is released.
A task that starts moves its call to where submitit's runner looks for it
(orchestrator.backends.slurm.array_task), so no task depends on anything written after sbatch.

Jobs found `submitting` whose script is not locked (a killed or failed submission) are settled
when the sweep's state is refreshed: if squeue or sacct know an array submitted from the script,
it is adopted (its calls are staged: it runs as if the submission had ended normally); if
neither does, it never reached SLURM: its jobs count as cancelled, to be submitted again, and its
staged calls are deleted. A launch first waits for the sbatch of an interrupted run to return.

The script's path is the submission's token: scripts are never reused, and squeue (%o) and
sacct (SubmitLine) show the path sbatch was given, so job names and comments stay the user's.
"""

import datetime as dt
import fcntl
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.backends import submitit_adapter
from orchestrator.backends.base import mark_started
from orchestrator.state.sweep_dir import ArrayTask, JobRecord, JobState, Manifest, SweepDir

SBATCH_TIMEOUT_S = 120
"""How long sbatch may take; a launch waits as long for an interrupted run's sbatch."""

SACCT_MARGIN_S = 600
"""sacct is asked for arrays submitted from this long before their script was written (clock
differences between this machine and the controller)."""

LOCK_POLL_S = 0.2

SCHEDULER_QUERY_TIMEOUT_S = 60


class SchedulerUnavailable(RuntimeError):
    """squeue or sacct could not answer."""


def staging_folder(sweep: SweepDir, script: Path) -> Path:
    """Where the calls of the array submitted from `script` wait for its tasks."""
    return sweep.logs / script.stem


@contextmanager
def submission_lock(script: Path) -> Iterator[int]:
    """Lock `script` while it is being submitted; yields the lock's descriptor, for sbatch to
    inherit (the lock lasts as long as one of them has it open)."""
    with open(script, "rb") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield file.fileno()


def being_submitted(script: Path) -> bool:
    """Whether an sbatch of `script` may be running: its lock is held."""
    with open(script, "rb") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def record_intent(
    sweep: SweepDir, manifest: Manifest, script: Path, records: list[JobRecord]
) -> None:
    """Record in the manifest, on disk, that `records` (some of its jobs) are about to be
    submitted as the tasks of `script`, in order."""
    for index, record in enumerate(records):
        record.state, record.error = JobState.SUBMITTING, None
        # Without an id, tracking does not follow the previous attempt any more.
        record.backend, record.slurm_job_id = "slurm", None
        record.array_task = ArrayTask(script=sweep.relative(script), index=index)
    sweep.write_manifest(manifest)


def mark_submitted(sweep: SweepDir, record: JobRecord, array_id: str) -> None:
    """Record the job as its task in array `array_id` (its array_task says which)."""
    assert record.array_task is not None
    task_id = f"{array_id}_{record.array_task.index}"
    log = submitit_adapter.job_log(sweep.logs, task_id)
    mark_started(record, "slurm", task_id, sweep.relative(log), JobState.SUBMITTED)


def interrupted_submissions(
    sweep: SweepDir, records: list[JobRecord]
) -> dict[Path, list[JobRecord]]:
    """The `submitting` jobs among `records`, by their array's script."""
    by_script: dict[Path, list[JobRecord]] = {}
    for record in records:
        if record.state == JobState.SUBMITTING and record.array_task is not None:
            by_script.setdefault(sweep.path / record.array_task.script, []).append(record)
    return by_script


def wait_for_sbatch(
    sweep: SweepDir,
    records: list[JobRecord],
    echo: Callable[[str], None],
    timeout_s: float = SBATCH_TIMEOUT_S,
) -> None:
    """Wait (at most timeout_s in all) for the sbatch of an interrupted run that is still
    submitting some of `records`."""
    deadline = time.monotonic() + timeout_s
    for script in interrupted_submissions(sweep, records):
        if being_submitted(script):
            echo(
                f"Waiting for the sbatch of {sweep.relative(script)}, started by an interrupted "
                "run, to return"
            )
        while being_submitted(script) and time.monotonic() < deadline:
            time.sleep(LOCK_POLL_S)


def settle_interrupted(sweep: SweepDir, records: list[JobRecord]) -> list[str]:
    """Settle the `submitting` jobs among `records` whose sbatch is over: adopt their array, or
    cancel them if it never reached SLURM. Returns one line per array saying which; jobs that
    squeue and sacct cannot tell about now stay `submitting`."""
    lines = []
    for script, jobs in interrupted_submissions(sweep, records).items():
        if being_submitted(script):
            continue
        try:
            array_id = find_array(script)
        except SchedulerUnavailable:
            continue
        name = sweep.relative(script)
        if array_id is not None:
            for record in jobs:
                mark_submitted(sweep, record, array_id)
            lines.append(
                f"Adopted SLURM array {array_id} of {name} ({len(jobs)} jobs): an interrupted "
                "run submitted it without recording it"
            )
        else:
            for record in jobs:
                record.state = JobState.CANCELLED
                record.error = f"its submission ({name}) did not reach SLURM"
            # No task will ever take these calls; a new submission stages its own.
            shutil.rmtree(staging_folder(sweep, script), ignore_errors=True)
            lines.append(
                f"{name} never reached SLURM (its run was interrupted): its {len(jobs)} jobs are "
                "submitted again"
            )
    return lines


def find_array(script: Path) -> str | None:
    """The id of the array submitted from `script`, if SLURM knows one: in the controller
    (queued, running, or ended less than MinJobAge ago), or else in accounting."""
    command = str(script.resolve())
    for line in scheduler_output(["squeue", "--me", "--states=all", "-h", "-o", "%F|%o"]):
        array_id, _, submitted = line.partition("|")
        if submitted == command:
            return array_id
    since = dt.datetime.fromtimestamp(script.stat().st_mtime - SACCT_MARGIN_S)
    for line in scheduler_output(
        ["sacct", "-X", "-n", "-P", "-S", since.strftime("%Y-%m-%dT%H:%M:%S"), "-o", "JobID,SubmitLine"]
    ):
        job_id, _, submit_line = line.partition("|")
        if submit_line.endswith(f" {command}"):
            return job_id.split("_")[0]
    return None


def scheduler_output(command: list[str]) -> list[str]:
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SCHEDULER_QUERY_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise SchedulerUnavailable(f"{shlex.join(command)}: {e}") from None
    return result.stdout.splitlines()
