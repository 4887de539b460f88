"""`spd-sweep search`: local agents sharing the study, status, and up-front rejection."""

import re
from pathlib import Path

from click.testing import CliRunner, Result

from orchestrator.cli.main import main
from orchestrator.search.launch import read_spec, study_of
from orchestrator.search.results import BEST_CONFIGS_DIR, PLOTS_DIR
from orchestrator.search.study import counted_trials
from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.search.searches import c_search, write_search

LOCAL_ARGS = ["--local", "--cpu", "--poll-interval", "0.5"]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_bad_search_file_is_rejected_before_anything_is_written(
    sweep_root: Path, tmp_path: Path
) -> None:
    data = c_search()
    data["search"]["C"] = {"linear1": {"low": 2, "high": 5}, "nope": {"low": 2, "high": 5}}
    path = write_search(tmp_path / "bad.yaml", data)
    result = CliRunner().invoke(main, ["search", str(path), "--n_trials", "2", *LOCAL_ARGS])
    assert result.exit_code == 1
    assert "pattern 'nope' is not in target_module_patterns" in result.output
    assert "the config has: linear1, linear2" in result.output
    assert not sweep_root.exists()


def test_search_needs_n_trials(sweep_root: Path, tmp_path: Path) -> None:
    path = write_search(tmp_path / "s.yaml", c_search())
    result = CliRunner().invoke(main, ["search", str(path), *LOCAL_ARGS])
    assert result.exit_code == 2 and "Missing option '--n_trials'" in result.output


def test_two_local_agents_share_the_study_and_rerun_continues_it(
    sweep_root: Path, tmp_path: Path
) -> None:
    path = write_search(tmp_path / "search.yaml", c_search())
    args = ["search", str(path), "--n_agents", "2", *LOCAL_ARGS]
    result = run(*args, "--n_trials", "4")
    assert result.exit_code == 0, result.output
    (sweep_path,) = sweep_root.iterdir()
    sweep = SweepDir(sweep_path)
    study = study_of(sweep, read_spec(sweep))
    trials = counted_trials(study.get_trials())
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert study.metric_names == ["loss/stochastic_recon", "C/total"]  # named in optuna-dashboard
    # The bar counts trials, not agents.
    assert re.search(r"\b4/4 \[[^]]*trial", result.output), result.output
    assert len({t.number for t in trials}) == 4
    agents = sweep.read_manifest().jobs
    assert [a.job_id for a in agents] == ["agent-0", "agent-1"]
    assert all(a.state == JobState.COMPLETED for a in agents)
    assert "Pareto front" in result.output
    assert list((sweep.path / BEST_CONFIGS_DIR).glob("trial-*.yaml"))
    assert (sweep.path / PLOTS_DIR / "history.png").exists()
    assert "search_history.png" in (sweep.report / "index.html").read_text()

    again = run(*args, "--n_trials", "5", "--no-create_report")
    assert again.exit_code == 0, again.output
    assert (sweep_root / sweep_path.name).exists() and len(list(sweep_root.iterdir())) == 1
    assert len(counted_trials(study.get_trials())) == 5
    status = run("status", sweep.sweep_id)
    assert "5 of 5 trials (5 complete)" in status.output


def test_dry_run_writes_the_search_and_submits_nothing(sweep_root: Path, tmp_path: Path) -> None:
    path = write_search(tmp_path / "search.yaml", c_search())
    result = run("search", str(path), "--n_trials", "3", "--n_agents", "2", "--dry-run", "--cpu")
    assert result.exit_code == 0, result.output
    assert "Would submit 2 agents" in result.output
    (sweep_path,) = sweep_root.iterdir()
    sweep = SweepDir(sweep_path)
    assert "--array=0-1%2" in (sweep.scripts / "array_000.sbatch").read_text()
    assert read_spec(sweep).n_trials == 3
    assert not sweep.code.exists() and not list(sweep.logs.glob("*"))
    resumed = CliRunner().invoke(main, ["resume", sweep.sweep_id])
    assert resumed.exit_code == 2 and "was never submitted: run its command again" in resumed.output


def test_set_applies_to_every_trial_but_not_to_what_the_search_varies(
    sweep_root: Path, tmp_path: Path
) -> None:
    path = write_search(tmp_path / "q.yaml", c_search())
    args = ["search", str(path), "--n_trials", "2", *LOCAL_ARGS, "--dry-run"]
    varied = CliRunner().invoke(main, [*args, "--set", "losses.importance_minimality.coeff=1e-3"])
    assert varied.exit_code == 2
    assert "the search varies losses.importance_minimality.coeff" in varied.output
    assert not sweep_root.exists()
    fixed = run(*args, "--set", "steps=12")
    assert fixed.exit_code == 0, fixed.output
    (sweep_path,) = sweep_root.iterdir()
    assert read_spec(SweepDir(sweep_path)).overrides == {"steps": 12, "device": "cpu"}
