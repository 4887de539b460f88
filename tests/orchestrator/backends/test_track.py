import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.backends import submitit_adapter
from orchestrator.backends.base import Call
from orchestrator.backends.launch import jobs_to_submit
from orchestrator.backends.track import (
    StepTally,
    refresh,
    slurm_state,
    status_table,
    wait_for_jobs,
)
from orchestrator.state.sweep_dir import JobRecord, JobState, Manifest, SweepDir
from spd.progress import Progress


def record(job_id: str, **fields: object) -> JobRecord:
    return JobRecord(job_id=job_id, name=f"job-{job_id}", experiment="tms_5-2", **fields)


def complete(sweep: SweepDir, job_id: str) -> None:
    run_dir = sweep.run_dir(job_id)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    run_dir.summary.write_text("{}")


def write_result(sweep: SweepDir, rec: JobRecord, outcome: tuple) -> None:
    submitit_adapter.write_outcome((sweep.path / rec.log_path).parent, rec.scheduler_id, outcome)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    ("sacct", "state", "error"),
    [
        ("PENDING", JobState.SUBMITTED, None),
        ("REQUEUED", JobState.SUBMITTED, None),
        ("UNKNOWN", JobState.SUBMITTED, None),
        ("", JobState.SUBMITTED, None),
        ("RUNNING", JobState.RUNNING, None),
        ("COMPLETING", JobState.RUNNING, None),
        ("CANCELLED by 0", JobState.CANCELLED, "cancelled in SLURM"),
        ("TIMEOUT", JobState.FAILED, "SLURM state TIMEOUT"),
        ("OUT_OF_MEMORY", JobState.FAILED, "SLURM state OUT_OF_MEMORY"),
        ("COMPLETED", JobState.FAILED, "SLURM says COMPLETED but the run wrote no summary.json"),
    ],
)
def test_slurm_states(sacct: str, state: JobState, error: str | None) -> None:
    assert slurm_state(sacct) == (state, error)


def test_states_from_run_dirs_results_and_processes(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "s")
    done = record(
        "a",
        backend="slurm",
        slurm_job_id="5_0",
        log_path="logs/5_0_0_log.out",
        state=JobState.RUNNING,
    )
    failed = record(
        "b",
        backend="slurm",
        slurm_job_id="5_1",
        log_path="logs/5_1_0_log.out",
        state=JobState.RUNNING,
    )
    running_local = record(
        "c",
        backend="local",
        local_job_id=str(os.getpid()),
        log_path="logs/c.1/1_0_log.out",
        state=JobState.RUNNING,
    )
    gone_local = record(
        "d",
        backend="local",
        local_job_id=str(dead_pid()),
        log_path="logs/d.1/2_0_log.out",
        state=JobState.RUNNING,
    )
    pending = record("e")
    finished = record("f", state=JobState.FAILED, error="old error")
    complete(sweep, "a")
    traceback = "Traceback (most recent call last):\n  ...\nFileNotFoundError: no /x/model.pt\n"
    write_result(sweep, failed, ("error", traceback))
    manifest = Manifest(jobs=[done, failed, running_local, gone_local, pending, finished])

    changed = refresh(sweep, manifest)

    states = {r.job_id: (r.state, r.error) for r in manifest.jobs}
    assert states == {
        "a": (JobState.COMPLETED, None),
        "b": (JobState.FAILED, "FileNotFoundError: no /x/model.pt"),
        "c": (JobState.RUNNING, None),
        "d": (JobState.CANCELLED, "the process ended without a result (interrupted?)"),
        "e": (JobState.PENDING, None),
        "f": (JobState.FAILED, "old error"),  # finished attempts are not asked again
    }
    assert [r.job_id for r in changed] == ["a", "b", "d"]


def test_which_jobs_a_rerun_submits() -> None:
    manifest = Manifest(
        jobs=[
            record("p"),
            record("q", state=JobState.SUBMITTED),
            record("r", state=JobState.RUNNING),
            record("c", state=JobState.COMPLETED),
            record("f", state=JobState.FAILED),
            record("x", state=JobState.CANCELLED),
        ]
    )
    assert [r.job_id for r in jobs_to_submit(manifest, retry_failed=False)] == ["p", "x"]
    assert [r.job_id for r in jobs_to_submit(manifest, retry_failed=True)] == ["p", "f", "x"]


def test_status_table(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "s")
    manifest = Manifest(
        jobs=[
            record("a1", state=JobState.COMPLETED, attempts=1, backend="slurm", slurm_job_id="7_0"),
            record(
                "b22",
                state=JobState.FAILED,
                attempts=2,
                backend="slurm",
                slurm_job_id="8_0",
                log_path="logs/8_0_0_log.out",
                error="ValueError: boom",
            ),
            record("c", state=JobState.PENDING),
        ]
    )
    lines = status_table(sweep, manifest).splitlines()
    assert lines[0].split() == [
        "JOB",
        "NAME",
        "STATE",
        "TRIES",
        "STEP",
        "LOSS",
        "ETA",
        "SCHEDULER",
        "ID",
        "SUMMARY",
        "/",
        "LOG",
    ]
    assert lines[1].split() == [
        "a1",
        "job-a1",
        "completed",
        "1",
        "-",
        "-",
        "-",
        "7_0",
        str(sweep.run_dir("a1").summary),
    ]
    assert lines[2].split() == [
        "b22",
        "job-b22",
        "failed",
        "2",
        "-",
        "-",
        "-",
        "8_0",
        str(sweep.path / "logs/8_0_0_log.out"),
    ]
    assert lines[3] == "    ValueError: boom"
    assert lines[4].split() == ["c", "job-c", "pending", "0", "-", "-", "-"]


def write_progress(
    sweep: SweepDir, job_id: str, step: int, loss: float | None, eta_s: float
) -> None:
    run_dir = sweep.run_dir(job_id)
    progress = Progress(
        step=step,
        steps=5000,
        loss=loss,
        steps_per_s=38.1,
        eta_s=eta_s,
        updated=datetime(2026, 1, 1, tzinfo=UTC),
    )
    progress.write(run_dir.progress)


def test_status_table_shows_each_runs_progress(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "s")
    manifest = Manifest(
        jobs=[
            record("r", state=JobState.RUNNING, attempts=1, backend="local", local_job_id="41"),
            record("f", state=JobState.FAILED, attempts=1, backend="local", local_job_id="42"),
            record("s", state=JobState.RUNNING, attempts=1, backend="local", local_job_id="43"),
        ]
    )
    write_progress(sweep, "r", 1200, 0.0123, eta_s=100.0)
    write_progress(sweep, "f", 300, 0.5, eta_s=50.0)
    write_progress(sweep, "s", 0, None, eta_s=9.0)

    lines = status_table(sweep, manifest).splitlines()

    assert lines[0].split()[3:7] == ["TRIES", "STEP", "LOSS", "ETA"]
    running = ["r", "job-r", "running", "1", "1200/5000", "0.0123", "1m40s", "41"]
    assert lines[1].split()[:8] == running
    # A stopped run's ETA is stale; a run before its first step has no loss yet.
    assert lines[2].split()[:8] == ["f", "job-f", "failed", "1", "300/5000", "0.5", "-", "42"]
    assert lines[3].split()[:8] == ["s", "job-s", "running", "1", "0/5000", "-", "9s", "43"]


class ScriptedBackend:
    """Finishes one job per advance(): the first fails (with a result file), the rest complete."""

    name = "slurm"

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.step = 0

    def submit(
        self, sweep: SweepDir, manifest: Manifest, jobs: list[tuple[JobRecord, Call]]
    ) -> None:
        raise AssertionError("not used")

    def advance(self, sweep: SweepDir) -> None:
        if self.step < len(self.manifest.jobs):
            rec = self.manifest.jobs[self.step]
            if self.step == 0:
                write_result(sweep, rec, ("error", "RuntimeError: bad value"))
            else:
                complete(sweep, rec.job_id)
        self.step += 1

    def stop(self) -> None:
        pass


def test_wait_reports_failures_as_they_happen_and_saves_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "orchestrator.backends.submitit_adapter.sacct_states", lambda ids: dict.fromkeys(ids, "RUNNING")
    )
    sweep = SweepDir(tmp_path / "s")
    manifest = Manifest(
        jobs=[
            record(
                name,
                backend="slurm",
                slurm_job_id=f"9_{i}",
                log_path=f"logs/9_{i}_0_log.out",
                state=JobState.SUBMITTED,
            )
            for i, name in enumerate(["j0", "j1", "j2"])
        ]
    )
    backend = ScriptedBackend(manifest)
    messages: list[tuple[str, list[JobState]]] = []

    def echo(text: str) -> None:
        messages.append((text, [r.state for r in manifest.jobs]))

    wait_for_jobs(sweep, manifest, backend, poll_interval_s=0, echo=echo)

    assert [r.state for r in manifest.jobs] == [
        JobState.FAILED,
        JobState.COMPLETED,
        JobState.COMPLETED,
    ]
    assert len(messages) == 1
    text, states_then = messages[0]
    assert text == (
        f"FAILED job-j0 [j0]: RuntimeError: bad value\n    log: {sweep.path / 'logs/9_0_0_log.out'}"
    )
    assert states_then[1:] == [JobState.RUNNING, JobState.RUNNING]  # the others were still going
    assert sweep.read_manifest() == manifest


def test_step_tally_sums_the_started_jobs_and_reads_a_finished_one_once(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path)
    manifest = Manifest(
        jobs=[
            record("a", state=JobState.RUNNING),
            record("b", state=JobState.COMPLETED),
            record("c", state=JobState.PENDING),
        ]
    )
    tally = StepTally()
    assert tally.text(sweep, manifest) == ""  # nothing started: nothing to say
    write_progress(sweep, "a", 1200, 0.0123, eta_s=100.0)
    write_progress(sweep, "b", 5000, 0.001, eta_s=0.0)
    assert tally.text(sweep, manifest) == "steps 6200/10000 of the started jobs"
    sweep.run_dir("b").progress.unlink()  # read once: a finished job's count stays
    write_progress(sweep, "a", 2500, 0.01, eta_s=50.0)
    assert tally.text(sweep, manifest) == "steps 7500/10000 of the started jobs"
