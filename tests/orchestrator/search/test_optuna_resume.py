"""`spd-sweep resume <search>`: continues (and extends) a search from its sweep directory."""

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from optuna.trial import TrialState, create_trial

from orchestrator.backends.track import read_outcome
from orchestrator.cli.main import main
from orchestrator.search.launch import SearchSpec, read_spec, study_of, write_search_sweep
from orchestrator.search.study import counted_trials
from orchestrator.state.sweep_dir import JobState, LaunchSettings, SweepDir
from tests.orchestrator.search.searches import (
    CPU,
    SHORT_TRIAL,
    c_search,
    search_file,
    write_search,
)

LOCAL = LaunchSettings(backend="local", n_agents=1, template="job_array", job_name="spd-search")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def finished_search(tmp_path: Path, n_trials: int) -> SweepDir:
    """A search launched locally whose study has all its trials (added, not run: no training)."""
    data = c_search()
    path = write_search(tmp_path / "search.yaml", data)
    spec = SearchSpec(
        experiment="tms_5-2", search=search_file(data), overrides=CPU, n_trials=n_trials
    )
    sweep, _ = write_search_sweep(spec, path, "search", None, 1, ["spd-sweep", "search", "x"])
    sweep.write_meta(sweep.read_meta().model_copy(update={"launches": [LOCAL]}))
    study = study_of(sweep, spec)
    for i in range(n_trials):
        study.add_trial(create_trial(values=[0.1 * (i + 1), 10.0 - i]))
    return sweep


def test_resume_extends_a_search_without_running_a_trial_twice(
    sweep_root: Path, tmp_path: Path
) -> None:
    quick = SHORT_TRIAL | {"steps": 10, "faithfulness_warmup.steps": 5}
    path = write_search(tmp_path / "search.yaml", c_search(fixed=quick))
    first = run(
        "search", str(path), "--n_trials", "2", "--local", "--cpu", "--poll-interval", "0.5",
        "--no-create_report",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    (sweep_path,) = sweep_root.iterdir()
    sweep = SweepDir(sweep_path)
    first_runs = {n: sweep.run_dir(f"trial-{n}").summary.read_text() for n in (0, 1)}

    resumed = run(
        "resume", sweep.sweep_id, "--n_trials", "3", "--local", "--partition", "debug",
        "--poll-interval", "0.5",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert "Study: 2 of 3 trials finished. Submitting 1 agents." in resumed.output
    assert "Pareto front" in resumed.output and (sweep.report / "index.html").exists()
    assert read_spec(sweep).n_trials == 3
    launch = sweep.read_meta().launch
    assert launch is not None and launch.backend == "local"
    assert launch.resources.partition == "debug"  # given now, replacing the stored launch option
    trials = counted_trials(study_of(sweep, read_spec(sweep)).get_trials())
    assert sorted(t.number for t in trials) == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # The resumed agent's sampler does not replay the first agent's draws.
    params = [t.params for t in sorted(trials, key=lambda t: t.number)]
    assert params[2] not in params[:2]
    # The resumed agent ran only the new trial; the first two runs were left as they were.
    assert read_outcome(sweep, sweep.read_manifest().job("agent-0")) == ("success", [2])
    assert sorted(p.name for p in (sweep.path / "runs").glob("trial-*")) == [
        "trial-0", "trial-1", "trial-2"
    ]  # fmt: skip
    assert {n: sweep.run_dir(f"trial-{n}").summary.read_text() for n in (0, 1)} == first_runs


def test_resume_of_a_finished_search_submits_nothing(sweep_root: Path, tmp_path: Path) -> None:
    sweep = finished_search(tmp_path, n_trials=2)
    result = run("resume", sweep.sweep_id, "--n_agents", "2")
    assert result.exit_code == 0, result.output
    assert f"Search {sweep.sweep_id} is finished (2 of 2 trials): nothing to submit" in (
        result.output
    )
    assert "Study search-" in result.output and "2 of 2 trials (2 complete)" in result.output
    records = sweep.read_manifest().jobs
    assert [r.state for r in records] == [JobState.PENDING] * 2
    assert all(r.attempts == 0 for r in records)
    assert not sweep.code.exists() and not sweep.logs.exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--experiments", "tms_5-2"), ("--storage", "sqlite:///other.db")]
)
def test_resume_cannot_change_what_the_search_is(
    sweep_root: Path, tmp_path: Path, option: str, value: str
) -> None:
    sweep = finished_search(tmp_path, n_trials=1)
    result = run("resume", sweep.sweep_id, option, value)
    assert result.exit_code == 2
    assert f"resume continues a sweep as defined; it cannot change {option}" in result.output
    assert not (tmp_path / "other.db").exists()


def test_resume_of_a_search_takes_no_retry_failed(sweep_root: Path, tmp_path: Path) -> None:
    sweep = finished_search(tmp_path, n_trials=1)
    result = run("resume", sweep.sweep_id, "--retry-failed")
    assert result.exit_code == 2
    assert (
        f"--retry-failed applies to grid sweeps; search {sweep.sweep_id} retries a killed "
        "agent's trial by itself"
    ) in result.output


def test_resume_rejects_n_trials_below_the_finished_ones(sweep_root: Path, tmp_path: Path) -> None:
    sweep = finished_search(tmp_path, n_trials=2)
    result = run("resume", sweep.sweep_id, "--n_trials", "1")
    assert result.exit_code == 2
    assert (
        f"--n_trials 1 is below the 2 trials search {sweep.sweep_id} has finished; "
        "give --n_trials 2 or more"
    ) in result.output
    assert read_spec(sweep).n_trials == 2


def test_n_trials_with_resume_of_a_grid_sweep_is_an_error(sweep_root: Path) -> None:
    dry = run("--experiments", "tms_5-2", "--cpu", "--dry-run")
    assert dry.exit_code == 0, dry.output
    (sweep_path,) = sweep_root.iterdir()
    result = run("resume", sweep_path.name, "--n_trials", "3")
    assert result.exit_code == 2
    assert f"--n_trials applies to searches; {sweep_path.name} is not one" in result.output
