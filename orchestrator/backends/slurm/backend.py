"""Jobs on SLURM: one job array per submission, rendered from a template, run by submitit.

submitit's own SlurmExecutor writes its scripts itself (and builds arrays with a fresh executor,
which would drop a template), so this backend uses submitit's job protocol directly, through
orchestrator.backends.submitit_adapter: each job's call is pickled before sbatch into the
array's staging folder, each task moves its own to where submitit's runner looks for it and
runs the runner, and submitit in the job handles USR2 (checkpoint + `scontrol requeue`) and
writes the result pickle that tracking reads. Every array is written ahead in the manifest, so
that a kill at any instant neither loses nor duplicates a job: see
orchestrator.backends.slurm.submissions.

Arrays longer than the cluster's MaxArraySize are split. With --n_agents, each part waits
(`afterany`) for the previous one, and the first part for the sweep's arrays still queued or
running (e.g. an interrupted run's) when it could otherwise exceed the cap; while the launcher
follows the sweep, orchestrator.backends.slurm.cap hands the slots a finishing array leaves idle
to the next one.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from orchestrator.backends import submitit_adapter
from orchestrator.backends.base import Call, SubmissionError
from orchestrator.backends.slurm import array_task
from orchestrator.backends.slurm.cap import CapUnavailable, hold_cap
from orchestrator.backends.slurm.render import (
    ArrayScript,
    array_chunks,
    max_array_size,
    render_array_script,
    slurm_filename,
)
from orchestrator.backends.slurm.submissions import (
    SBATCH_TIMEOUT_S,
    mark_submitted,
    record_intent,
    settle_interrupted,
    staging_folder,
    submission_lock,
)
from orchestrator.state.sweep_dir import JobRecord, JobState, Manifest, SweepDir
from orchestrator.sweep.resources import SlurmResources
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

SCRIPT_NAME = re.compile(r"^array_(\d+)\.sbatch$")

LIVE = frozenset({JobState.SUBMITTED, JobState.RUNNING})


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

    def render(self, sweep: SweepDir, n_tasks: int, staging: Path) -> str:
        script = ArrayScript(
            job_name=self.job_name,
            array_size=n_tasks,
            max_running=self.n_agents or n_tasks,
            output=f"{slurm_filename(sweep.logs)}/{submitit_adapter.ARRAY_TASK_LOG}",
            chdir=str(self.workdir),
            directives=self.resources.directives(),
            signal_delay_s=SIGNAL_DELAY_S,
            python=sys.executable,
            runner_module=array_task.__name__,
            submitit_folder=str(sweep.logs),
            staging_folder=str(staging),
            code_dir=str(sweep.code),
            env={name: os.environ[name] for name in FORWARDED_ENV if name in os.environ},
            nodes=self.resources.nodes,
            nproc_per_node=self.resources.nproc_per_node,
        )
        return render_array_script(self.template, script)

    def write_scripts(self, sweep: SweepDir, n_jobs: int) -> list[tuple[range, Path]]:
        """Render the arrays that run n_jobs jobs into scripts/, numbered after existing ones
        (a script, and its staging folder, names one submission)."""
        sweep.scripts.mkdir(parents=True, exist_ok=True)
        first = next_script_number(sweep.scripts)
        written = []
        for offset, chunk in enumerate(array_chunks(n_jobs, max_array_size())):
            path = sweep.scripts / f"array_{first + offset:03d}.sbatch"
            atomic_write_text(path, self.render(sweep, len(chunk), staging_folder(sweep, path)))
            written.append((chunk, path))
        return written

    def plan(self, sweep: SweepDir, n_jobs: int) -> list[str]:
        return [
            f"Rendered {script} (jobs {chunk.start}-{chunk.stop - 1} of this submission)"
            for chunk, script in self.write_scripts(sweep, n_jobs)
        ]

    def submit(
        self, sweep: SweepDir, manifest: Manifest, jobs: list[tuple[JobRecord, Call]]
    ) -> None:
        """Submit the jobs, array by array, each written ahead in the manifest."""
        after = self.arrays_to_wait_for(manifest, len(jobs))
        for chunk, script in self.write_scripts(sweep, len(jobs)):
            part = jobs[chunk.start : chunk.stop]
            array_id = self.submit_array(sweep, manifest, script, part, after)
            # Without a cap the arrays run side by side.
            after = [array_id] if self.n_agents is not None else []

    def arrays_to_wait_for(self, manifest: Manifest, n_jobs: int) -> list[str]:
        """The sweep's queued and running arrays, if n_jobs more jobs alongside them could
        exceed --n_agents."""
        live = [
            record.slurm_job_id
            for record in manifest.jobs
            if record.state in LIVE and record.backend == "slurm" and record.slurm_job_id
        ]
        if self.n_agents is None or len(live) + n_jobs <= self.n_agents:
            return []
        return sorted({job_id.split("_")[0] for job_id in live}, key=int)

    def submit_array(
        self,
        sweep: SweepDir,
        manifest: Manifest,
        script: Path,
        part: list[tuple[JobRecord, Call]],
        after: list[str],
    ) -> str:
        """Submit `part` as the array of `script` once `after` ended; returns its id."""
        self.stage_calls(sweep, script, [call for _, call in part])
        records = [record for record, _ in part]
        try:
            with submission_lock(script) as lock:
                record_intent(sweep, manifest, script, records)
                array_id = sbatch(script, after, keep_open=lock)
                for record in records:
                    mark_submitted(sweep, record, array_id)
                sweep.write_manifest(manifest)
        except SubmissionError:
            settle_interrupted(sweep, records)  # sbatch may have submitted it before it failed
            sweep.write_manifest(manifest)
            raise
        return array_id

    def stage_calls(self, sweep: SweepDir, script: Path, calls: list[Call]) -> None:
        """Pickle the calls of the tasks of `script` into its staging folder."""
        staging = staging_folder(sweep, script)
        staging.mkdir(parents=True, exist_ok=True)
        timeout_min = self.resources.timeout_minutes() or 0
        for index, call in enumerate(calls):
            submitit_adapter.dump_submission(
                call,
                submitit_adapter.staged_call(staging, index),
                timeout_min,
                MAX_REQUEUES_ON_TIMEOUT,
            )

    def advance(self, sweep: SweepDir) -> None:
        """SLURM schedules by itself; with a cap, slots that an array leaves idle go to the
        next array."""
        if self.n_agents is None:
            return
        try:
            hold_cap(sweep.scripts, self.n_agents)
        except CapUnavailable:
            pass  # the arrays run one after another, as submitted, until the next poll

    def stop(self) -> None:
        """SLURM jobs outlive the orchestrator: `spd-sweep status` and re-runs pick them up."""


def next_script_number(scripts: Path) -> int:
    """One more than the highest number of the scripts in `scripts` (0 if none)."""
    numbers = [int(m.group(1)) for p in scripts.iterdir() if (m := SCRIPT_NAME.match(p.name))]
    return max(numbers, default=-1) + 1


def sbatch(script: Path, after: list[str], keep_open: int) -> str:
    """Submit a script once the jobs `after` ended; returns the job (array) id. sbatch inherits
    the descriptor `keep_open` (a lock to hold as long as it runs). The script goes by its
    resolved path, which squeue and sacct then show (submissions.find_array)."""
    command = ["sbatch", "--parsable"]
    if after:
        command.append(f"--dependency=afterany:{':'.join(after)}")
    command.append(str(script.resolve()))
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SBATCH_TIMEOUT_S,
            check=False,
            pass_fds=(keep_open,),
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise SubmissionError(f"could not run {shlex.join(command)}: {e}") from None
    job_id = result.stdout.strip().split(";")[0]
    if result.returncode != 0 or not job_id.isdigit():
        raise SubmissionError(
            f"{shlex.join(command)} failed (exit {result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return job_id
