"""The one place that uses submitit's internals (tested with the version pyproject pins).

submitit's public executors write their own scripts, so the SLURM backend renders its own and
reuses submitit's job protocol underneath: a call pickled as a `DelayedSubmission` into the
job's folder, run in the job by submitit's runner (`process_job`), which handles USR2
(checkpoint and requeue) and writes a result pickle. An array task first moves its call, staged
before sbatch, to where the runner looks for it (`run_array_task`). The file names of that
protocol, the pickle format, the runner and the sacct watcher are internal to submitit;
everything else in the orchestrator goes through the functions here.
"""

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from submitit import JobEnvironment
from submitit.core.submission import process_job
from submitit.core.utils import DelayedSubmission, JobPaths, cloudpickle_dump, pickle_load
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJobEnvironment

ARRAY_TASK_LOG = "%A_%a_0_log.out"
"""An array task's log as submitit names it (`JobPaths.stdout`, task 0), as a SLURM pattern."""

Outcome = tuple[str, Any]
"""What a finished job left: ('success', its return value) or ('error', the traceback text)."""


def _paths(folder: Path, job_id: str) -> JobPaths:
    return JobPaths(folder, job_id=job_id, task_id=0)


def dump_submission(call: Any, path: Path, timeout_min: int, max_requeues: int) -> None:
    """Pickle `call` as submitit's job runner expects it; it is requeued on a time limit at
    most `max_requeues` times."""
    delayed = DelayedSubmission(call)
    delayed.set_timeout(timeout_min, max_requeues)
    delayed.dump(path)


def submitted_pickle(folder: Path, job_id: str) -> Path:
    """Where the runner of job `job_id` (`<array id>_<task>` for array tasks) finds its call."""
    return _paths(folder, job_id).submitted_pickle


def staged_call(staging: Path, task_index: int) -> Path:
    """Where an array's task `task_index` finds its call, pickled (dump_submission) before
    sbatch, when the array's id is not known yet."""
    return staging / f"{task_index}.pkl"


JOB_ENVIRONMENT = "spd_slurm"
"""The name (SUBMITIT_EXECUTOR) of `ArrayTaskEnvironment`, which pyproject registers as a
submitit plugin (entry point group `submitit`, name `job_environment`)."""
EXECUTOR_ENV = "SUBMITIT_EXECUTOR"


class ArrayTaskEnvironment(SlurmJobEnvironment):
    """submitit's SLURM job environment, whose requeue happens once and survives SLURM stopping
    the job.

    On USR2 the runner checkpoints and asks `scontrol requeue` for this job. SLURM answers by
    stopping the job: SIGTERM to all its processes, scontrol included, which may get it before
    it exits. submitit would then take the requeue for failed and write an error result, so the
    orchestrator would report a failure while the job runs again. Here scontrol stopped by
    SIGTERM means the stop is under way; the runner exits without a result, as after any
    requeue, and the task's state is SLURM's (requeued, or cancelled if that is what stopped it).

    A data-parallel task's rank 0 gets USR2 twice (from SLURM, which signals every process of the
    step, and from torchrun, which passes it on): only the first is acted on, so a second
    `scontrol requeue`, refused while the first is under way, cannot turn into an error."""

    @classmethod
    def name(cls) -> str:
        return JOB_ENVIRONMENT

    def _handle_signals(self, paths: JobPaths, submission: DelayedSubmission) -> None:
        super()._handle_signals(paths, submission)
        checkpoint_and_requeue = signal.getsignal(self._usr_sig())
        assert callable(checkpoint_and_requeue)
        acted = False

        def on_first_signal_only(signum: int, frame: object) -> None:
            nonlocal acted
            if acted:
                logging.getLogger("submitit").info(
                    "%s again: this job is already being requeued", signal.Signals(signum).name
                )
                return
            acted = True
            checkpoint_and_requeue(signum, frame)

        signal.signal(self._usr_sig(), on_first_signal_only)

    def _requeue(self, countdown: int) -> None:
        try:
            super()._requeue(countdown)
        except subprocess.CalledProcessError as error:
            if error.returncode != -signal.SIGTERM:
                raise
            # submitit's logger: the one that writes the job log's lines about requeues.
            logging.getLogger("submitit").info(
                "Requeued job %s: SLURM stopped scontrol with the job it requeues "
                "(%d remaining timeouts)",
                self.job_id,
                countdown,
            )


def run_array_task(folder: Path, staging: Path) -> None:
    """Run this SLURM array task (in the task, with SUBMITIT_EXECUTOR=slurm): move its staged
    call to where the runner looks for it, then run the runner on `folder` in the job
    environment `ArrayTaskEnvironment`. A requeued task finds the runner's pickle in place (the
    call, or a checkpoint of it) and keeps it.

    A data-parallel task runs this in every rank (torchrun's RANK): rank 0 does the above, as
    the task's one submitit runner (result pickle, requeue on USR2); the other ranks only call
    the same function (their share of the decomposition) and touch none of submitit's files."""
    environment = JobEnvironment()
    task_index = environment.array_task_id
    assert task_index is not None, "not a SLURM array task"
    expected = submitted_pickle(folder, environment.job_id)
    staged = staged_call(staging, int(task_index))
    if os.environ.get(RANK_ENV, "0") != "0":
        run_as_other_rank(expected, staged)
        return
    # submitit names its files, and requeues only, as task 0 (SLURM_PROCID): torchrun may have
    # put rank 0 on any node of the allocation, whose srun task has another PROCID.
    os.environ[PROCID_ENV] = "0"
    if not expected.exists():
        staged.rename(expected)
    # Set here rather than in the template, so user templates get it too.
    os.environ[EXECUTOR_ENV] = JOB_ENVIRONMENT
    process_job(folder)


RANK_ENV = "RANK"
"""torchrun's global rank of this process; unset outside torchrun."""
PROCID_ENV = "SLURM_PROCID"
"""Where submitit's JobEnvironment reads the task's rank (its `global_rank`)."""
CALL_WAIT_S = 60
"""How long a rank other than 0 looks for the task's call (the shared file system may lag)."""


def run_as_other_rank(submitted: Path, staged: Path) -> None:
    """A rank other than 0 of a data-parallel task: load the task's call, wherever it is (rank 0
    moves it from `staged` to `submitted`, atomically, and writes its checkpoints there), and
    call it. USR2 is for rank 0, which checkpoints and requeues the whole task; this rank
    keeps stepping with it meanwhile (its collectives need it), instead of dying of it."""
    signal.signal(signal.SIGUSR2, _leave_usr2_to_rank_0)
    deadline = time.monotonic() + CALL_WAIT_S
    while True:
        for path in (submitted, staged):
            try:
                delayed = DelayedSubmission.load(path)
            except FileNotFoundError:  # moved between the check and the read: try the other
                continue
            delayed.function(*delayed.args, **delayed.kwargs)
            return
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"neither {submitted} nor {staged} holds the task's call")
        time.sleep(0.1)


def _leave_usr2_to_rank_0(signum: int, frame: object) -> None:
    logging.getLogger(__name__).warning(
        "rank %s: %s; rank 0 checkpoints and requeues the task",
        os.environ.get(RANK_ENV),
        signal.Signals(signum).name,
    )


def job_log(folder: Path, job_id: str) -> Path:
    return _paths(folder, job_id).stdout


def result_pickle(folder: Path, job_id: str) -> Path:
    return _paths(folder, job_id).result_pickle


def read_outcome(folder: Path, job_id: str) -> Outcome | None:
    """The job's outcome once the runner wrote it; None before (or while it is being written)."""
    path = result_pickle(folder, job_id)
    if not path.exists():
        return None
    try:
        return pickle_load(path)
    except (EOFError, OSError):
        return None


def write_outcome(folder: Path, job_id: str, outcome: Outcome) -> None:
    """Write an outcome as the runner would (tests of state tracking use it)."""
    path = result_pickle(folder, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    cloudpickle_dump(outcome, path)


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """{job id: sacct state} in one sacct call, through submitit's watcher."""
    if not job_ids:
        return {}
    watcher = SlurmInfoWatcher()
    for job_id in job_ids:
        watcher.register_job(job_id)
    watcher.update()
    return {job_id: watcher.get_state(job_id, mode="cache") for job_id in job_ids}
