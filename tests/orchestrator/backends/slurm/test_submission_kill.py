"""An orchestrator killed in the middle of a multi-array submission, on the real cluster: the
same command again runs every job exactly once, leaves no orphan task, and --n_agents holds.

A stand-in `sbatch` first on PATH holds the second array's submission: it announces each call,
and at the held one waits for the test before and after running the real sbatch (on FIFOs the
test writes to), so the kill lands at a known instant. A stand-in `scontrol` reports a
MaxArraySize of 2, so that four jobs take two arrays.
"""

import contextlib
import errno
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.backends.slurm.stand_ins import put_stand_ins_on_path
from tests.orchestrator.backends.slurm.test_slurm_sweeps import (
    SLURM_ARGS,
    spawn,
    the_sweep,
    wait_until,
)
from tests.orchestrator.short_sweeps import SHORT_RUN, write_sweep_file
from tests.orchestrator.slurm_accounting import max_concurrency, wait_for_final_states

pytestmark = pytest.mark.slurm

HELD_CALL = 1
"""The held sbatch call: the second array's (calls count from 0)."""

HELD_SBATCH = r"""#!/bin/bash
# sbatch for tests: call number $HELD_CALL waits for the test before and after the real sbatch.
control=$SBATCH_CONTROL
n=$(find "$control" -name '*.called' | wc -l)
echo $$ > "$control/$n.tmp" && mv "$control/$n.tmp" "$control/$n.called"
[ "$n" = "$HELD_CALL" ] || exec "$REAL_SBATCH" "$@"
read -r _ < "$control/submit"
out=$("$REAL_SBATCH" "$@")
status=$?
touch "$control/$n.submitted"
read -r _ < "$control/return"
echo "$out"
exit $status
"""

SMALL_ARRAYS_SCONTROL = r"""#!/bin/bash
# scontrol for tests: `scontrol show config` says MaxArraySize = 2.
if [ "$1 $2" = "show config" ]; then
  "$REAL_SCONTROL" "$@" | sed 's/^MaxArraySize .*/MaxArraySize            = 2/'
else
  exec "$REAL_SCONTROL" "$@"
fi
"""

N_AGENTS = 2


class HeldSbatch:
    """The test's side of the stand-in sbatch."""

    def __init__(self, control: Path) -> None:
        self.control = control
        for point in ("submit", "return"):
            os.mkfifo(control / point)

    def wait_until_called(self, call: int) -> int:
        """Wait for the call; returns the stand-in's process id."""
        called = self.control / f"{call}.called"
        wait_until(called.exists, 120, f"sbatch call {call}")
        return int(called.read_text())

    def wait_until_submitted(self, call: int) -> None:
        wait_until((self.control / f"{call}.submitted").exists, 60, f"sbatch call {call} returning")

    def let_go(self, point: str) -> None:
        """Let the held call pass `point` ("submit" or "return") once it waits there."""
        wait_until(lambda: self._signal(point), 30, f"the held sbatch waiting at {point}")

    def _signal(self, point: str) -> bool:
        try:
            fifo = os.open(self.control / point, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nobody reads it yet
                return False
            raise
        try:
            os.write(fifo, b"go\n")
        finally:
            os.close(fifo)
        return True


@pytest.fixture
def held_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldSbatch]:
    bin_dir, control = tmp_path / "bin", tmp_path / "sbatch_calls"
    control.mkdir()
    put_stand_ins_on_path(
        bin_dir,
        monkeypatch,
        {"sbatch": HELD_SBATCH, "scontrol": SMALL_ARRAYS_SCONTROL},
    )
    monkeypatch.setenv("SBATCH_CONTROL", str(control))
    monkeypatch.setenv("HELD_CALL", str(HELD_CALL))
    yield HeldSbatch(control)
    held = control / f"{HELD_CALL}.called"
    if held.exists():  # a failed test may leave it waiting for ever
        pid = int(held.read_text())
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if str(bin_dir / "sbatch").encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def arrays_submitted_from(sweep: SweepDir) -> set[str]:
    """Every array that sacct knows was submitted from the sweep's scripts."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-2hours", "-o", "JobID,SubmitLine"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    scripts = f" {sweep.scripts.resolve()}/"
    return {line.split("|", 1)[0].split("_")[0] for line in out.splitlines() if scripts in line}


def read_until(process: subprocess.Popen[str], text: str) -> list[str]:
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never came; output: {''.join(lines)}")


@pytest.mark.parametrize(
    ("kill_at", "settled"),
    [
        ("before sbatch", "scripts/array_001.sbatch never reached SLURM"),
        ("during sbatch", "Adopted SLURM array"),
        ("after sbatch", "Adopted SLURM array"),
    ],
)
def test_submission_killed_at_any_instant_runs_each_job_once(
    slurm_cluster: str, sweep_root: Path, held_sbatch: HeldSbatch, kill_at: str, settled: str
) -> None:
    sweep_file = write_sweep_file(
        Path("seeds.yaml"), {"global": SHORT_RUN, "tms_5-2": {"seed": {"values": [0, 1, 2, 3]}}}
    )
    command = ["--sweep", str(sweep_file), "--n_agents", str(N_AGENTS), *SLURM_ARGS]
    killed = spawn(*command)
    sbatch_pid = held_sbatch.wait_until_called(HELD_CALL)
    if kill_at == "after sbatch":
        held_sbatch.let_go("submit")
        held_sbatch.wait_until_submitted(HELD_CALL)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    if kill_at != "during sbatch":
        os.kill(sbatch_pid, signal.SIGKILL)  # its answer reaches nobody

    rerun = spawn(*command)
    output = []
    if kill_at == "during sbatch":  # its sbatch outlived it: the re-run waits for it
        output += read_until(rerun, "Waiting for the sbatch of")
        held_sbatch.let_go("submit")
        held_sbatch.let_go("return")
    output.append(rerun.communicate(timeout=300)[0])
    text = "".join(output)

    assert rerun.returncode == 0, text
    assert settled in text, text
    assert f"Submitting {2 if kill_at == 'before sbatch' else 0} of 4 jobs" in text, text
    sweep = the_sweep(sweep_root)
    manifest = sweep.read_manifest()
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED] * 4
    tasks_per_array = Counter(r.slurm_job_id.split("_")[0] for r in manifest.jobs)
    # No array outside the manifest (a duplicate, or one whose tasks had no call).
    assert arrays_submitted_from(sweep) == set(tasks_per_array)
    tasks = [
        task for array, n in tasks_per_array.items() for task in wait_for_final_states(array, n)
    ]
    assert [t.state for t in tasks] == ["COMPLETED"] * 4, tasks
    assert max_concurrency(tasks) <= N_AGENTS, tasks
    logs = "".join(log.read_text() for log in sweep.logs.glob("*_log.out"))
    assert {r.job_id: logs.count(f"Job {r.job_id} of sweep") for r in manifest.jobs} == {
        r.job_id: 1 for r in manifest.jobs
    }
