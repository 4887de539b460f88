"""Fixtures of the SLURM backend's tests."""

import os
import shutil
from pathlib import Path

import pytest

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
    """The jobs (which get the test's PATH) see SCONTROL_STOPPED_BY_ITS_REQUEUE."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("scontrol")
    assert real is not None
    monkeypatch.setenv("REAL_SCONTROL", real)
    (bin_dir / "scontrol").write_text(SCONTROL_STOPPED_BY_ITS_REQUEUE)
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
