"""Stand-ins for SLURM's commands in tests: scripts put first on PATH (the jobs, which get the
test's environment, see them too), each calling the real command (`$REAL_<COMMAND>`) for what it
does not change."""

import os
import shutil
from pathlib import Path

import pytest


def put_stand_ins_on_path(
    bin_dir: Path, monkeypatch: pytest.MonkeyPatch, scripts: dict[str, str]
) -> None:
    """{command: script}: each script becomes that command, first on PATH (the jobs, which get
    the test's environment, see it too); the real command is in $REAL_<COMMAND>."""
    bin_dir.mkdir()
    for name, text in scripts.items():
        real = shutil.which(name)
        assert real is not None, name
        monkeypatch.setenv(f"REAL_{name.upper()}", real)
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
