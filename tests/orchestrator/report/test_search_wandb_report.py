"""A search whose trials log to W&B (--project), offline: each trial's run carries the search's
tags, and the W&B report's runset, panels and sync command cover the trials, not the agents
(which log nothing)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import main
from orchestrator.report.wandb_spec import WANDB_REPORT_SPEC, RunPanels, WandbReportSpec
from orchestrator.state.sweep_dir import SweepDir
from tests.orchestrator.search.searches import c_search, write_search
from tests.wandb_records import read_offline_run

PROJECT = "spd-search-test"


def test_a_search_logs_its_trials_to_wandb_and_reports_them(
    sweep_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    path = write_search(tmp_path / "search.yaml", c_search())
    args = ["search", str(path), "--n_trials", "2", "--local", "--cpu", "--project", PROJECT]
    result = CliRunner().invoke(main, [*args, "--poll-interval", "0.5"])
    assert result.exit_code == 0, result.output
    (sweep_path,) = sweep_root.iterdir()
    sweep = SweepDir(sweep_path)
    experiment = c_search()["experiment"]

    trial_runs = sorted(sweep.path.glob("runs/trial-*/wandb/offline-run-*"))
    assert len(trial_runs) == 2, trial_runs
    runs = [read_offline_run(next(run.glob("run-*.wandb"))) for run in trial_runs]
    assert all(run.tags == [sweep.sweep_id, experiment] for run in runs)
    logged = set.intersection(*(run.history_keys for run in runs))

    spec = WandbReportSpec.read(sweep.report / WANDB_REPORT_SPEC)
    (panels,) = [block for block in spec.blocks if isinstance(block, RunPanels)]
    assert panels.tags == [sweep.sweep_id, experiment]
    plotted = {plot.metric for plot in panels.line_plots}
    assert "loss/stochastic_recon" in plotted and plotted <= logged, plotted - logged
    assert panels.figures and set(panels.figures) <= logged
    assert panels.run_comparer  # two trials
    assert f"wandb sync {' '.join(str(run) for run in trial_runs)}" in result.output
