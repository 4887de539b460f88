"""One orchestrator at a time writes and submits a sweep: a second one, on the same sweep, is
refused with the holder's name and changes nothing."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import main
from orchestrator.state.sweep_dir import SweepDir

HOLD = """
import sys
from orchestrator.state.sweep_dir import SweepDir
with SweepDir(__import__("pathlib").Path(sys.argv[1])).lock():
    print("locked", flush=True)
    sys.stdin.read()
"""
DRY_RUN = ["--experiments", "tms_5-2", "--dry-run", "--cpu"]


@pytest.fixture
def dry_run_sweep(sweep_root: Path) -> SweepDir:
    result = CliRunner().invoke(main, DRY_RUN)
    assert result.exit_code == 0, result.output
    (path,) = sweep_root.iterdir()
    return SweepDir(path)


@pytest.fixture
def other_orchestrator(dry_run_sweep: SweepDir) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the sweep's lock, as a running orchestrator does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(dry_run_sweep.path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "locked\n"
    yield process
    process.kill()
    process.wait()


def files(sweep: SweepDir) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sweep.path.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("args", [DRY_RUN, ["resume", "SWEEP"]], ids=["same command", "resume"])
def test_second_orchestrator_on_a_sweep_is_refused(
    dry_run_sweep: SweepDir, other_orchestrator: subprocess.Popen[str], args: list[str]
) -> None:
    before = files(dry_run_sweep)
    args = [dry_run_sweep.sweep_id if a == "SWEEP" else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"sweep {dry_run_sweep.path} is in use by PID {other_orchestrator.pid} on " in result.output
    assert files(dry_run_sweep) == before


def test_the_sweep_is_free_again_when_the_other_orchestrator_ends(
    dry_run_sweep: SweepDir, other_orchestrator: subprocess.Popen[str]
) -> None:
    assert other_orchestrator.stdin is not None
    other_orchestrator.stdin.close()
    assert other_orchestrator.wait() == 0
    result = CliRunner().invoke(main, DRY_RUN)
    assert result.exit_code == 0, result.output
