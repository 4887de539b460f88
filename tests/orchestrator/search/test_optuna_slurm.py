"""`spd-sweep search` on the real single-node SLURM cluster: the agents are one array."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import main
from orchestrator.search.launch import read_spec, study_of
from orchestrator.search.study import counted_trials
from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.search.searches import c_search, write_search
from tests.orchestrator.slurm_accounting import wait_for_final_states

pytestmark = pytest.mark.slurm

SLURM_ARGS = ["--cpu", "--time", "10", "--poll-interval", "0.5", "--no-create_report"]


def test_two_slurm_agents_finish_the_study(
    slurm_cluster: str, sweep_root: Path, tmp_path: Path
) -> None:
    path = write_search(tmp_path / "search.yaml", c_search())
    result = CliRunner().invoke(
        main,
        ["search", str(path), "--n_trials", "4", "--n_agents", "2", *SLURM_ARGS],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    (sweep_path,) = sweep_root.iterdir()
    sweep = SweepDir(sweep_path)
    records = sweep.read_manifest().jobs
    assert [r.state for r in records] == [JobState.COMPLETED] * 2
    (array,) = {r.slurm_job_id.split("_")[0] for r in records}
    assert "%2" in (sweep.scripts / "array_000.sbatch").read_text()
    trials = counted_trials(study_of(sweep, read_spec(sweep)).get_trials())
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert [t.state for t in wait_for_final_states(array, 2)] == ["COMPLETED", "COMPLETED"]
