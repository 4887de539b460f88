"""Jobs on SLURM: one job array per submission, rendered from a template, run by submitit.

submitit's own SlurmExecutor writes its scripts itself (and builds arrays with a fresh executor,
which would drop a template), so this backend uses submitit's parts directly: each job's call is
pickled as a submitit DelayedSubmission to `<logs>/<array id>_<task>_submitted.pkl`, the array's
script runs `python -m submitit.core._submit <logs>`, and submitit in the job loads the pickle,
handles USR2 (checkpoint + `scontrol requeue`) and writes the result pickle that tracking reads.

Arrays longer than the cluster's MaxArraySize are split; each part depends on the previous one
(`afterany`), so that --n_agents holds across parts.
"""

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

from submitit.core.utils import DelayedSubmission, JobPaths

from orchestrator.render import (
    ArrayScript,
    array_chunks,
    max_array_size,
    render_array_script,
    slurm_filename,
)
from orchestrator.slurm_resources import SlurmResources
from orchestrator.submit import Call, SubmissionError, mark_started
from orchestrator.sweep_dir import JobRecord, JobState, SweepDir
from spd.atomic_io import atomic_write_text

SIGNAL_DELAY_S = 90
"""USR2 comes this long before the time limit: time to write a checkpoint and requeue."""

MAX_REQUEUES_ON_TIMEOUT = 3
"""submitit requeues a job that hits its time limit at most this many times."""

FORWARDED_ENV = (
    "SPD_CACHE_DIR",
    "WANDB_MODE",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)
"""Environment variables written into scripts when set at submission (not secrets: those stay
in the environment sbatch exports)."""

SUBMITIT_LOG = "%A_%a_0_log.out"
"""submitit's name for an array task's log (JobPaths.stdout with task 0), as a SLURM pattern."""


class SlurmBackend:
    name = "slurm"

    def __init__(
        self,
        template: Path,
        job_name: str,
        resources: SlurmResources,
        n_agents: int | None,
        workdir: Path,
    ) -> None:
        self.template = template
        self.job_name = job_name
        self.resources = resources
        self.n_agents = n_agents
        self.workdir = workdir

    def render(self, sweep: SweepDir, n_tasks: int) -> str:
        script = ArrayScript(
            job_name=self.job_name,
            array_size=n_tasks,
            max_running=self.n_agents or n_tasks,
            output=f"{slurm_filename(sweep.logs)}/{SUBMITIT_LOG}",
            chdir=str(self.workdir),
            directives=self.resources.directives(),
            signal_delay_s=SIGNAL_DELAY_S,
            python=sys.executable,
            submitit_folder=str(sweep.logs),
            code_dir=str(sweep.code),
            env={name: os.environ[name] for name in FORWARDED_ENV if name in os.environ},
        )
        return render_array_script(self.template, script)

    def write_scripts(self, sweep: SweepDir, n_jobs: int) -> list[tuple[range, Path]]:
        """Render the arrays that run n_jobs jobs into scripts/, numbered after existing ones."""
        sweep.scripts.mkdir(parents=True, exist_ok=True)
        first = len(list(sweep.scripts.glob("array_*.sbatch")))
        written = []
        for offset, chunk in enumerate(array_chunks(n_jobs, max_array_size())):
            path = sweep.scripts / f"array_{first + offset:03d}.sbatch"
            atomic_write_text(path, self.render(sweep, len(chunk)))
            written.append((chunk, path))
        return written

    def submit(self, sweep: SweepDir, jobs: list[tuple[JobRecord, Call]]) -> None:
        sweep.logs.mkdir(parents=True, exist_ok=True)
        timeout_min = self.resources.timeout_minutes() or 0
        previous_array: str | None = None
        for chunk, script in self.write_scripts(sweep, len(jobs)):
            part = jobs[chunk.start : chunk.stop]
            pickles = []
            for _, call in part:
                delayed = DelayedSubmission(call)
                delayed.set_timeout(timeout_min, MAX_REQUEUES_ON_TIMEOUT)
                pickle = sweep.logs / f".unsubmitted_{uuid.uuid4().hex}.pkl"
                delayed.dump(pickle)
                pickles.append(pickle)
            try:
                array_id = sbatch(script, previous_array)
            except SubmissionError:
                for pickle in pickles:
                    pickle.unlink(missing_ok=True)
                raise
            # A task waits (60 s) for its pickle, so moving them after sbatch is safe.
            for index, ((record, _), pickle) in enumerate(zip(part, pickles, strict=True)):
                paths = JobPaths(sweep.logs, job_id=f"{array_id}_{index}", task_id=0)
                pickle.rename(paths.submitted_pickle)
                mark_started(
                    record,
                    self.name,
                    f"{array_id}_{index}",
                    sweep.relative(paths.stdout),
                    JobState.SUBMITTED,
                )
            previous_array = array_id

    def advance(self, sweep: SweepDir) -> None:
        """SLURM schedules by itself."""

    def stop(self) -> None:
        """SLURM jobs outlive the orchestrator: `spd-sweep status` and re-runs pick them up."""


def sbatch(script: Path, after: str | None = None) -> str:
    """Submit a script; returns the job (array) id."""
    command = ["sbatch", "--parsable"]
    if after is not None:
        command.append(f"--dependency=afterany:{after}")
    command.append(str(script))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise SubmissionError(f"could not run {shlex.join(command)}: {e}") from None
    job_id = result.stdout.strip().split(";")[0]
    if result.returncode != 0 or not job_id.isdigit():
        raise SubmissionError(
            f"{shlex.join(command)} failed (exit {result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return job_id
