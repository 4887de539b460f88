"""The write-ahead of SLURM submissions, without a cluster: intents, the script lock, the order
of a submission, settling interrupted submissions, --n_agents across submissions, and an array
task picking up its staged call. On the cluster: test_submission_kill.py."""

import subprocess
from pathlib import Path

import pytest
from submitit import JobEnvironment

from orchestrator.backends import submitit_adapter
from orchestrator.backends.base import SubmissionError
from orchestrator.backends.slurm import backend as slurm_backend
from orchestrator.backends.slurm import submissions
from orchestrator.backends.slurm.backend import SlurmBackend
from orchestrator.backends.slurm.render import resolve_template
from orchestrator.backends.slurm.submissions import (
    SchedulerUnavailable,
    being_submitted,
    record_intent,
    settle_interrupted,
    staging_folder,
    submission_lock,
)
from orchestrator.backends.track import refresh
from orchestrator.state.sweep_dir import ArrayTask, JobRecord, JobState, Manifest, SweepDir
from orchestrator.sweep.resources import SlurmResources


def two_jobs_being_submitted(tmp_path: Path) -> tuple[SweepDir, Manifest, Path]:
    sweep = SweepDir(tmp_path / "s")
    sweep.scripts.mkdir(parents=True)
    script = sweep.scripts / "array_003.sbatch"
    script.write_text("#!/bin/bash\n")
    manifest = Manifest(
        jobs=[
            JobRecord(job_id=job_id, name=job_id, experiment="tms_5-2", state=state)
            for job_id, state in [("a", JobState.PENDING), ("b", JobState.CANCELLED)]
        ]
    )
    manifest.jobs[1].backend, manifest.jobs[1].slurm_job_id = "slurm", "5_1"
    sweep.write_manifest(manifest)
    record_intent(sweep, manifest, script, manifest.jobs)
    return sweep, manifest, script


def test_intent_is_on_disk_before_sbatch_and_forgets_the_previous_attempt(
    tmp_path: Path,
) -> None:
    sweep, _, _ = two_jobs_being_submitted(tmp_path)
    on_disk = sweep.read_manifest().jobs
    assert [(r.state, r.array_task, r.slurm_job_id) for r in on_disk] == [
        (JobState.SUBMITTING, ArrayTask(script="scripts/array_003.sbatch", index=0), None),
        (JobState.SUBMITTING, ArrayTask(script="scripts/array_003.sbatch", index=1), None),
    ]


def test_the_lock_lasts_as_long_as_an_sbatch_that_inherited_it(tmp_path: Path) -> None:
    script = tmp_path / "array_000.sbatch"
    script.write_text("#!/bin/bash\n")
    assert not being_submitted(script)
    with submission_lock(script) as descriptor:
        assert being_submitted(script)
        # An "sbatch" that outlives the orchestrator that started it.
        child = subprocess.Popen(["sleep", "60"], pass_fds=(descriptor,))
    try:
        assert being_submitted(script)
    finally:
        child.kill()
        child.wait()
    assert not being_submitted(script)


def test_found_array_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep, manifest, _ = two_jobs_being_submitted(tmp_path)
    monkeypatch.setattr(submissions, "find_array", lambda script: "7")

    lines = settle_interrupted(sweep, manifest.jobs)

    assert lines == [
        (
            "Adopted SLURM array 7 of scripts/array_003.sbatch (2 jobs): an interrupted run "
            "submitted it without recording it"
        )
    ]
    assert [(r.state, r.slurm_job_id, r.log_path, r.attempts) for r in manifest.jobs] == [
        (JobState.SUBMITTED, "7_0", "logs/7_0_0_log.out", 1),
        (JobState.SUBMITTED, "7_1", "logs/7_1_0_log.out", 1),
    ]


def test_array_that_never_reached_slurm_is_cancelled_to_be_submitted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, manifest, _ = two_jobs_being_submitted(tmp_path)
    monkeypatch.setattr(submissions, "find_array", lambda script: None)

    lines = settle_interrupted(sweep, manifest.jobs)

    assert lines == [
        (
            "scripts/array_003.sbatch never reached SLURM (its run was interrupted): its 2 jobs "
            "are submitted again"
        )
    ]
    assert {(r.state, r.error) for r in manifest.jobs} == {
        (
            JobState.CANCELLED,
            "its submission (scripts/array_003.sbatch) did not reach SLURM",
        )
    }


def unavailable(script: Path) -> str | None:
    raise SchedulerUnavailable("squeue: down")


def test_submissions_under_way_or_unknown_to_a_silent_scheduler_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, manifest, script = two_jobs_being_submitted(tmp_path)
    monkeypatch.setattr(submissions, "find_array", lambda script: None)
    with submission_lock(script):
        assert settle_interrupted(sweep, manifest.jobs) == []
    monkeypatch.setattr(submissions, "find_array", unavailable)
    assert settle_interrupted(sweep, manifest.jobs) == []
    assert {r.state for r in manifest.jobs} == {JobState.SUBMITTING}


def test_refresh_settles_and_reports_adopted_jobs_as_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, manifest, _ = two_jobs_being_submitted(tmp_path)
    monkeypatch.setattr(submissions, "find_array", lambda script: "7")
    monkeypatch.setattr(submitit_adapter, "sacct_states", lambda ids: dict.fromkeys(ids, "PENDING"))

    assert refresh(sweep, manifest) == manifest.jobs
    assert {r.state for r in manifest.jobs} == {JobState.SUBMITTED}


@pytest.mark.parametrize("started_before", [False, True])
def test_array_task_moves_its_staged_call_into_place_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started_before: bool
) -> None:
    folder, staging = tmp_path / "logs", tmp_path / "logs" / "array_000"
    staging.mkdir(parents=True)
    submitit_adapter.dump_submission(len, submitit_adapter.staged_call(staging, 1), 10, 3)
    expected = submitit_adapter.submitted_pickle(folder, "7_1")
    if started_before:  # requeued: the runner's pickle (maybe a checkpoint) is kept
        expected.write_bytes(b"checkpoint")
    for name, value in {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "9",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "1",
    }.items():
        monkeypatch.setenv(name, value)
    ran, environments = [], []

    def process_job(folder: Path) -> None:
        ran.append(folder)
        environments.append(type(JobEnvironment()))

    monkeypatch.setattr(submitit_adapter, "process_job", process_job)

    submitit_adapter.run_array_task(folder, staging)

    assert ran == [folder]
    # The runner sees the environment whose requeue survives SLURM stopping the job.
    assert environments == [submitit_adapter.ArrayTaskEnvironment]
    assert (expected.read_bytes() == b"checkpoint") == started_before
    assert submitit_adapter.staged_call(staging, 1).exists() == started_before


@pytest.mark.parametrize(("n_agents", "waits_for"), [(3, ["5", "6"]), (4, []), (None, [])])
def test_new_arrays_wait_for_live_ones_only_when_the_cap_could_be_exceeded(
    tmp_path: Path, n_agents: int | None, waits_for: list[str]
) -> None:
    sweep = SweepDir(tmp_path / "s")
    sweep.path.mkdir()
    live = [("a", "5_0", JobState.RUNNING), ("b", "6_0", JobState.SUBMITTED)]
    ended = [("c", "4_0", JobState.COMPLETED), ("d", "4_1", JobState.CANCELLED)]
    sweep.write_manifest(
        Manifest(
            jobs=[
                JobRecord(
                    job_id=job_id,
                    name=job_id,
                    experiment="tms_5-2",
                    backend="slurm",
                    slurm_job_id=slurm_id,
                    state=state,
                )
                for job_id, slurm_id, state in live + ended
            ]
        )
    )
    backend = SlurmBackend(Path("t.sbatch.j2"), "spd-x", SlurmResources(), n_agents, tmp_path)

    assert backend.arrays_to_wait_for(sweep.read_manifest(), n_jobs=2) == waits_for


def sweep_of_two_pending_jobs(tmp_path: Path) -> tuple[SweepDir, Manifest, SlurmBackend]:
    sweep = SweepDir(tmp_path / "s")
    sweep.path.mkdir()
    manifest = Manifest(
        jobs=[JobRecord(job_id=job_id, name=job_id, experiment="tms_5-2") for job_id in "ab"]
    )
    sweep.write_manifest(manifest)
    backend = SlurmBackend(resolve_template("job_array"), "spd-x", SlurmResources(), 2, tmp_path)
    return sweep, manifest, backend


def test_sbatch_runs_once_the_calls_and_the_intent_are_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, manifest, backend = sweep_of_two_pending_jobs(tmp_path)
    seen = []

    def sbatch(script: Path, after: list[str], keep_open: int) -> str:
        staged = sorted(p.name for p in staging_folder(sweep, script).iterdir())
        states = [r.state for r in sweep.read_manifest().jobs]
        seen.append((script.name, staged, states, being_submitted(script)))
        return "42"

    monkeypatch.setattr(slurm_backend, "sbatch", sbatch)
    monkeypatch.setattr(slurm_backend, "max_array_size", lambda: 1001)

    backend.submit(sweep, manifest, [(record, print) for record in manifest.jobs])

    assert seen == [("array_000.sbatch", ["0.pkl", "1.pkl"], [JobState.SUBMITTING] * 2, True)]
    assert [(r.state, r.slurm_job_id) for r in sweep.read_manifest().jobs] == [
        (JobState.SUBMITTED, "42_0"),
        (JobState.SUBMITTED, "42_1"),
    ]


def test_failed_sbatch_leaves_its_jobs_to_be_submitted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, manifest, backend = sweep_of_two_pending_jobs(tmp_path)

    def sbatch(script: Path, after: list[str], keep_open: int) -> str:
        raise SubmissionError("sbatch: error: invalid partition")

    monkeypatch.setattr(slurm_backend, "sbatch", sbatch)
    monkeypatch.setattr(slurm_backend, "max_array_size", lambda: 1001)
    monkeypatch.setattr(submissions, "find_array", lambda script: None)

    with pytest.raises(SubmissionError, match="invalid partition"):
        backend.submit(sweep, manifest, [(record, print) for record in manifest.jobs])

    assert {(r.state, r.error) for r in sweep.read_manifest().jobs} == {
        (JobState.CANCELLED, "its submission (scripts/array_000.sbatch) did not reach SLURM")
    }
    # Its staged calls are gone: no task will take them.
    assert not staging_folder(sweep, sweep.scripts / "array_000.sbatch").exists()
