"""Jobs on this machine (`--local`): the same calls as on SLURM, through submitit's LocalExecutor,
at most n_agents at a time.

Each attempt gets its own submitit folder, `logs/<job>.<attempt>/`, so process ids (which the
system reuses) never mix two attempts' logs or results. Workers get the code snapshot first on
PYTHONPATH and an equal share of the CPUs as their torch threads.
"""

import os
import shlex
import sys
from collections import deque

import submitit

from orchestrator.backends.base import Call, mark_started
from orchestrator.state.sweep_dir import JobRecord, JobState, Manifest, SweepDir

LOCAL_TIMEOUT_MIN = 30 * 24 * 60
"""submitit kills local jobs after their timeout; local runs have no time limit worth the name."""


class LocalBackend:
    name = "local"

    def __init__(self, n_agents: int, threads_per_job: int) -> None:
        self.n_agents = n_agents
        self.threads_per_job = threads_per_job
        self._queue: deque[tuple[JobRecord, Call]] = deque()
        self._running: dict[str, submitit.LocalJob] = {}

    def plan(self, sweep: SweepDir, n_jobs: int) -> list[str]:
        """Local jobs need nothing prepared ahead."""
        return []

    def submit(
        self, sweep: SweepDir, manifest: Manifest, jobs: list[tuple[JobRecord, Call]]
    ) -> None:
        """Local jobs die with the orchestrator: nothing to write ahead (the launcher saves the
        manifest after)."""
        self._queue.extend(jobs)
        self.advance(sweep)

    def advance(self, sweep: SweepDir) -> None:
        for job_id, job in list(self._running.items()):
            if job.done():  # also reaps the finished process
                del self._running[job_id]
        while self._queue and len(self._running) < self.n_agents:
            record, call = self._queue.popleft()
            self._running[record.job_id] = self._start(sweep, record, call)

    def _start(
        self, sweep: SweepDir, record: JobRecord, call: Call
    ) -> submitit.LocalJob:
        folder = sweep.logs / f"{record.job_id}.{record.attempts + 1}"
        # -P: the working directory must not shadow the code snapshot on sys.path.
        executor = submitit.LocalExecutor(folder, python=f"{shlex.quote(sys.executable)} -P")
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, stderr_to_stdout=True)
        python_path = os.pathsep.join(filter(None, [str(sweep.code), os.environ.get("PYTHONPATH")]))
        # The worker copies this environment when it starts; no shell in between, so that
        # cancelling reaches the worker itself.
        with submitit.helpers.environment_variables(
            PYTHONPATH=python_path, OMP_NUM_THREADS=self.threads_per_job
        ):
            job = executor.submit(call)
        mark_started(
            record, self.name, job.job_id, sweep.relative(job.paths.stdout), JobState.RUNNING
        )
        return job

    def stop(self) -> None:
        """Local workers die with the orchestrator (they resume from checkpoints on re-run)."""
        self._queue.clear()
        for job in self._running.values():
            job.cancel(check=False)
        self._running.clear()
