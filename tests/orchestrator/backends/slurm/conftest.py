"""Fixtures of the SLURM backend's tests."""

from pathlib import Path

import pytest

from tests.orchestrator.backends.slurm.stand_ins import put_stand_ins_on_path

SCONTROL_STOPPED_BY_ITS_REQUEUE = r"""#!/bin/bash
# scontrol for tests: a job's own `scontrol requeue` stays until SLURM stops the job for the
# requeue, as happens when SLURM's SIGTERM comes first; other calls are the real ones.
if [ "$1" = requeue ] && [ -n "$SUBMITIT_EXECUTOR" ]; then
  "$REAL_SCONTROL" "$@" || exit
  exec sleep 60
fi
exec "$REAL_SCONTROL" "$@"
"""


@pytest.fixture
def requeue_meets_the_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs see SCONTROL_STOPPED_BY_ITS_REQUEUE."""
    put_stand_ins_on_path(
        tmp_path / "bin", monkeypatch, {"scontrol": SCONTROL_STOPPED_BY_ITS_REQUEUE}
    )
