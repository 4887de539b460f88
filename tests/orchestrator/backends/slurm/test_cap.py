"""--n_agents across arrays (orchestrator.backends.slurm.cap): what squeue says is read right,
the planned updates never exceed the cap, and on the real cluster a slow task of one array does
not keep the next array waiting while slots are free."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.backends.slurm.cap import (
    CapUpdate,
    QueuedArray,
    count_tasks,
    parse_squeue,
    plan_updates,
)
from orchestrator.state.sweep_dir import JobState
from tests.orchestrator.backends.slurm.gate_hook import GATE_DIR_ENV, HOOK, closed_gate
from tests.orchestrator.backends.slurm.stand_ins import put_stand_ins_on_path
from tests.orchestrator.backends.slurm.test_slurm_sweeps import (
    SLURM_ARGS,
    spawn,
    the_sweep,
    wait_until,
)
from tests.orchestrator.backends.slurm.test_submission_kill import SMALL_ARRAYS_SCONTROL
from tests.orchestrator.short_sweeps import SHORT_RUN, write_sweep_file
from tests.orchestrator.slurm_accounting import max_concurrency, wait_for_final_states

REPO_ROOT = Path(__file__).resolve().parents[4]


def test_squeue_lines_give_each_array_of_the_sweep(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    lines = [
        f"980|980_[2-3%2]|PENDING|(null)|{scripts}/array_000.sbatch",
        f"981|981_[0-5%2]|PENDING|afterany:980_*(unfulfilled)|{scripts}/array_001.sbatch",
        f"980|980_0|RUNNING|(null)|{scripts}/array_000.sbatch",
        f"980|980_1|COMPLETING|(null)|{scripts}/array_000.sbatch",
        f"982|982_4|PENDING|(null)|{scripts}/array_002.sbatch",  # requeued, all others started
        f"990|990_0|RUNNING|(null)|{tmp_path}/other/scripts/array_000.sbatch",
    ]
    assert parse_squeue(lines, scripts) == [
        QueuedArray(980, unfinished=4, running=2, throttle=2, waiting=False),
        QueuedArray(981, unfinished=6, running=0, throttle=2, waiting=True),
        QueuedArray(982, unfinished=1, running=0, throttle=None, waiting=False),
    ]


@pytest.mark.parametrize(("ranges", "n"), [("3", 1), ("2-5,7", 5), ("0-10:2", 6)])
def test_task_ranges_are_counted(ranges: str, n: int) -> None:
    assert count_tasks(ranges) == n


def array(
    array_id: int, unfinished: int, running: int, throttle: int | None, waiting: bool = False
) -> QueuedArray:
    return QueuedArray(array_id, unfinished, running, throttle, waiting)


@pytest.mark.parametrize(
    ("arrays", "n_agents", "updates"),
    [
        # The first array runs at its cap: the next one waits.
        ([array(1, 4, 2, 2), array(2, 6, 0, 2, waiting=True)], 2, []),
        # Its last task runs: the next one starts with the free slot...
        ([array(1, 1, 1, None), array(2, 6, 0, 2, waiting=True)], 2, [CapUpdate(2, 1, True)]),
        # ... and gets the first one's slot once it ended.
        ([array(2, 5, 1, 1)], 2, [CapUpdate(2, 2, False)]),
        # Both slots in use: nothing.
        ([array(1, 1, 1, None), array(2, 5, 1, 1), array(3, 2, 0, 2, waiting=True)], 2, []),
        # Free slots go to the next arrays in order, as many as each can use.
        (
            [
                array(1, 1, 1, None),
                array(2, 1, 0, 4, waiting=True),
                array(3, 9, 0, 4, waiting=True),
            ],
            4,
            [CapUpdate(2, 1, True), CapUpdate(3, 2, True)],
        ),
        # A cap lowered on a re-run, below what runs: nothing more starts.
        ([array(1, 20, 8, 8), array(2, 3, 0, 4, waiting=True)], 4, []),
        # A requeued task running above a lowered throttle counts as running.
        ([array(1, 3, 2, 1), array(2, 3, 0, 2, waiting=True)], 2, []),
    ],
)
def test_updates_hand_over_free_slots_within_the_cap(
    arrays: list[QueuedArray], n_agents: int, updates: list[CapUpdate]
) -> None:
    assert plan_updates(arrays, n_agents) == updates


N_AGENTS = 2


@pytest.fixture
def small_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """scontrol says MaxArraySize = 2 (other scontrol commands are the real ones); returns the
    gate directory of gate_hook, which the jobs (on PYTHONPATH) see."""
    gates = tmp_path / "gates"
    gates.mkdir()
    put_stand_ins_on_path(tmp_path / "bin", monkeypatch, {"scontrol": SMALL_ARRAYS_SCONTROL})
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv(GATE_DIR_ENV, str(gates))
    return gates


@pytest.fixture
def gate(small_arrays: Path) -> Iterator[Path]:
    """The gate of seed 0, closed; opened at the end whatever happened."""
    closed = closed_gate(small_arrays, 0)
    closed.touch()
    yield closed
    closed.unlink(missing_ok=True)


@pytest.mark.slurm
def test_next_array_runs_beside_a_slow_task_within_the_cap(
    slurm_cluster: str, sweep_root: Path, gate: Path
) -> None:
    # Two arrays of two: the job of seed 0 (first array) is held until the second array's jobs
    # are done, which only happens if they get the slot seed 1 leaves.
    sweep_file = write_sweep_file(
        Path("seeds.yaml"),
        {
            "global": SHORT_RUN | {"user_metrics": [HOOK]},
            "tms_5-2": {"seed": {"values": [0, 1, 2, 3]}},
        },
    )
    orchestrator = spawn("--sweep", str(sweep_file), "--n_agents", str(N_AGENTS), *SLURM_ARGS)
    try:
        wait_until(lambda: sweep_root.exists() and any(sweep_root.iterdir()), 120, "the sweep")
        sweep = the_sweep(sweep_root)
        wait_until(lambda: sweep.manifest_path.exists(), 120, "the manifest")
        by_seed = {r.params["seed"]: r.job_id for r in sweep.read_manifest().jobs}
        wait_until(
            lambda: all(sweep.run_dir(by_seed[seed]).is_complete() for seed in (1, 2, 3)),
            240,
            "the jobs of seeds 1-3 while seed 0's is held",
        )
        assert not sweep.run_dir(by_seed[0]).is_complete()
    except TimeoutError as e:
        orchestrator.kill()
        raise AssertionError(f"{e}; the orchestrator said: {orchestrator.communicate()[0]}") from e
    finally:
        gate.unlink(missing_ok=True)
    output = orchestrator.communicate(timeout=240)[0]
    assert orchestrator.returncode == 0, output

    manifest = sweep.read_manifest()
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED] * 4
    arrays = sorted({r.slurm_job_id.split("_")[0] for r in manifest.jobs}, key=int)
    assert len(arrays) == 2
    tasks = [task for array_id in arrays for task in wait_for_final_states(array_id, 2)]
    assert max_concurrency(tasks) <= N_AGENTS, tasks
    # The held task ended last: the second array's ran while it did.
    assert max(t.end for t in tasks[2:]) <= tasks[0].end, tasks
