"""The requeue of an array task (submitit's runner calls it on USR2) with stand-in scontrols:
SLURM stopping the job while scontrol still runs is a requeue under way, not a failure. The same
race on the cluster: test_requeued_jobs_resume_from_their_checkpoint."""

import logging
import subprocess
from pathlib import Path

import pytest
from submitit import JobEnvironment

from orchestrator.backends.submitit_adapter import JOB_ENVIRONMENT, ArrayTaskEnvironment

STOPPED_WITH_THE_JOB = '#!/bin/bash\necho "$@" >> "$0.calls"\nkill -TERM $$\n'
REFUSING = '#!/bin/bash\necho "$@" >> "$0.calls"\necho \'Requeue of job is disabled\' >&2\nexit 1\n'


def environment_with_scontrol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str
) -> tuple[JobEnvironment, Path]:
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(script)
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", JOB_ENVIRONMENT)
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "11")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    environment = JobEnvironment()
    assert isinstance(environment, ArrayTaskEnvironment)
    return environment, tmp_path / "scontrol.calls"


def test_scontrol_stopped_with_the_job_is_a_requeue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    environment, calls = environment_with_scontrol(tmp_path, monkeypatch, STOPPED_WITH_THE_JOB)

    with caplog.at_level(logging.INFO, logger="submitit"):
        environment._requeue(countdown=2)

    assert calls.read_text() == "requeue 11_1\n"
    assert "Requeued job 11_1: SLURM stopped scontrol" in caplog.text


def test_a_refused_requeue_is_still_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment, calls = environment_with_scontrol(tmp_path, monkeypatch, REFUSING)

    with pytest.raises(subprocess.CalledProcessError):
        environment._requeue(countdown=2)
    assert calls.read_text() == "requeue 11_1\n"
