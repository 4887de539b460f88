"""A run directory is held by one live process: a second one is refused with the holder's name,
and the lock of a killed holder is taken over (the kernel released it)."""

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spd.config import Config
from spd.dir_lock import LOCK_FILE, DirBusyError, DirLock
from spd.run import run_decomposition
from spd.run_dir import RunDir
from tests.conftest import tms_config_dict

HOLD = """
import sys
from spd.dir_lock import DirLock
with DirLock(sys.argv[1], "run directory"):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes stdin, or kills us
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds tmp_path/run until it is killed or released."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "locked\n"
    yield process
    process.kill()
    process.wait()


def test_a_held_directory_is_refused_naming_the_holder(tmp_path, holder) -> None:
    busy = rf"run directory {tmp_path / 'run'} is in use by PID {holder.pid} on "
    with pytest.raises(DirBusyError, match=busy), DirLock(tmp_path / "run", "run directory"):
        pass


def test_a_run_into_a_held_directory_is_refused_and_writes_nothing(tmp_path, holder) -> None:
    config = Config.model_validate(tms_config_dict(steps=3))
    with pytest.raises(DirBusyError, match=f"in use by PID {holder.pid}"):
        run_decomposition(config, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, holder, caplog) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with caplog.at_level(logging.INFO, logger="spd.dir_lock"), DirLock(tmp_path / "run", "run directory"):
        pass
    assert f"from PID {holder.pid} on" in caplog.text and "which has ended" in caplog.text


def test_a_released_lock_is_taken_without_a_takeover(tmp_path, holder, caplog) -> None:
    assert holder.stdin is not None
    holder.stdin.close()  # the holder leaves its `with` block and exits
    assert holder.wait() == 0
    with caplog.at_level(logging.INFO, logger="spd.dir_lock"), DirLock(tmp_path / "run", "run directory"):
        assert RunDir(tmp_path / "run").path.is_dir()
    assert "Took over" not in caplog.text
