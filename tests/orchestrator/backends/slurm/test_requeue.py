"""The requeue of an array task (submitit's runner calls it on USR2) with stand-in scontrols:
SLURM stopping the job while scontrol still runs is a requeue under way, not a failure, and a
second USR2 is not a second requeue. The same on the cluster:
test_requeued_jobs_resume_from_their_checkpoint, and test_data_parallel.py's requeue (slow)."""

import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from submitit import JobEnvironment
from submitit.core.utils import DelayedSubmission, JobPaths
from submitit.helpers import Checkpointable

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


class CountedCheckpoints(Checkpointable):
    def __init__(self) -> None:
        self.checkpoints = 0

    def __call__(self) -> None:
        pass

    def checkpoint(self) -> DelayedSubmission:
        self.checkpoints += 1
        return super().checkpoint()


@pytest.fixture
def restored_signal_handlers() -> Iterator[None]:
    """The runner's handlers are installed in this process: put the test process's back."""
    signals = [signal.SIGUSR2, signal.SIGTERM, signal.SIGCONT]
    before = {s: signal.getsignal(s) for s in signals}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


@pytest.mark.usefixtures("restored_signal_handlers")
def test_a_second_usr2_is_not_a_second_requeue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment, calls = environment_with_scontrol(tmp_path, monkeypatch, STOPPED_WITH_THE_JOB)
    call = CountedCheckpoints()
    delayed = DelayedSubmission(call)
    delayed.set_timeout(10, 3)
    paths = JobPaths(tmp_path / "logs", job_id="11_1", task_id=0)
    paths.folder.mkdir()
    environment._handle_signals(paths, delayed)
    on_usr2 = signal.getsignal(signal.SIGUSR2)
    assert callable(on_usr2)

    with pytest.raises(SystemExit):  # the runner exits after its requeue, leaving no result
        on_usr2(signal.SIGUSR2, None)
    on_usr2(signal.SIGUSR2, None)  # from torchrun, after SLURM's: nothing more

    assert calls.read_text() == "requeue 11_1\n"
    assert call.checkpoints == 1
