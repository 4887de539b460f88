"""The W&B report of a real local sweep whose runs logged to W&B offline: built without a network,
its structure checked against what the runs really logged; only saving is replaced."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import wandb
import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from orchestrator.cli.report import create_report
from orchestrator.report.model import read_sweep_report
from orchestrator.report.wandb_report import build_wandb_views, publish_wandb_report
from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.report.conftest import PROJECT, FinishedSweep
from tests.orchestrator.short_sweeps import DIVERGED
from tests.wandb_records import OfflineRun, read_offline_run

ENTITY = "test-entity"


def offline_runs(finished_sweep: FinishedSweep, experiment: str) -> list[OfflineRun]:
    sweep = finished_sweep.sweep
    files = [
        path
        for job in sweep.read_manifest().jobs
        if job.experiment == experiment and job.state == JobState.COMPLETED
        for path in sweep.run_dir(job.job_id).path.glob("wandb/offline-run-*/run-*.wandb")
    ]
    return [read_offline_run(Path(f)) for f in files]


def tag_filter_values(filters: str) -> list[list[str]]:
    parsed = expr.expr_to_filters(filters)
    assert parsed.op == "AND"
    assert all(
        f.op == "IN" and (f.key.section, f.key.name) == ("run", "tags") for f in parsed.filters
    )
    return [f.value for f in parsed.filters]


def test_wandb_report_structure_matches_what_the_runs_logged(finished_sweep: FinishedSweep) -> None:
    sweep = finished_sweep.sweep
    views = build_wandb_views(read_sweep_report(sweep), ENTITY)
    report = views.report

    assert (report.entity, report.project, report.title) == (ENTITY, PROJECT, "Report test sweep")
    header = report.blocks[0]
    assert isinstance(header, wr.MarkdownBlock)
    meta = sweep.read_meta()
    assert sweep.sweep_id in header.text and meta.code_version in header.text
    assert "--report_title" in header.text

    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    headings = [b.text for b in report.blocks if isinstance(b, wr.H2)]
    assert headings == ["tms_5-2", "tms_5-2-id"] and len(grids) == 2
    for experiment, grid, workspace in zip(headings, grids, views.workspaces):
        runs = offline_runs(finished_sweep, experiment)
        assert runs and all(run.tags == [sweep.sweep_id, experiment] for run in runs)
        logged = set.intersection(*(run.history_keys for run in runs))
        logged_losses = {k for k in logged if k.startswith("loss/")}
        assert {"loss/total", "loss/stochastic_recon"} <= logged_losses

        (runset,) = grid.runsets
        assert (runset.entity, runset.project) == (ENTITY, PROJECT)
        assert tag_filter_values(runset.filters) == [[sweep.sweep_id], [experiment]]
        plots = [p for p in grid.panels if isinstance(p, wr.LinePlot)]
        plotted = {y for p in plots for y in p.y}
        assert plotted <= logged, plotted - logged
        assert {k for k in plotted if k.startswith("loss/")} == logged_losses
        assert {"eval/loss/stochastic_recon", "eval/alive/total"} <= plotted
        assert sum(isinstance(p, wr.RunComparer) for p in grid.panels) == 1  # a sweep: 2 runs each

        assert (workspace.entity, workspace.project) == (ENTITY, PROJECT)
        assert workspace.name == f"{sweep.sweep_id} {experiment}"
        assert tag_filter_values(workspace.runset_settings.filters) == [
            [sweep.sweep_id],
            [experiment],
        ]
        sections = {s.name: {y for p in s.panels for y in p.y} for s in workspace.sections}
        assert sections["Training losses"] == logged_losses
        assert (
            sections["Evaluation"] <= logged
            and "eval/loss/stochastic_recon" in sections["Evaluation"]
        )
        assert workspace._to_model().spec.section.run_sets  # serialises offline

    failed_notes = [b.text for b in report.blocks if isinstance(b, wr.MarkdownBlock)][1:]
    assert len(failed_notes) == 1 and DIVERGED in failed_notes[0]


class FakeApi:
    """The W&B API client: the default entity and the app URL (the real one logs in online)."""

    default_entity = ENTITY
    client = SimpleNamespace(app_url="https://wandb.test")

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass


def test_publishing_saves_the_report_and_a_workspace_per_experiment(
    finished_sweep: FinishedSweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[object] = []

    def save_report(self: wr.Report, draft: bool = False, clone: bool = False) -> wr.Report:
        saved.append(self)
        self.id = "report-1"
        return self

    def save_workspace(self: ws.Workspace) -> ws.Workspace:
        saved.append(self)
        self._internal_name = f"view-{len(saved)}"
        return self

    monkeypatch.setattr(wr.Report, "save", save_report)
    monkeypatch.setattr(ws.Workspace, "save", save_workspace)
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    printed: list[str] = []

    urls = publish_wandb_report(read_sweep_report(finished_sweep.sweep), printed.append)

    assert [type(v) for v in saved] == [wr.Report, ws.Workspace, ws.Workspace]
    assert len(urls) == 3 and all(f"wandb.test/{ENTITY}/{PROJECT}" in url for url in urls)
    assert "reports/Report-test-sweep--report-1" in urls[0]
    assert printed == [f"W&B: {url}" for url in urls]


def test_a_failed_publication_is_reported_and_the_html_report_stands(
    finished_sweep: FinishedSweep, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(self: wr.Report, draft: bool = False, clone: bool = False) -> wr.Report:
        raise wandb.errors.CommError("upsertView: permission denied")

    monkeypatch.setattr(wr.Report, "save", refuse)
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_MODE", "online")
    sweep = SweepDir(tmp_path / "sweep")
    shutil.copytree(finished_sweep.sweep.path, sweep.path)
    shutil.rmtree(sweep.report)
    printed: list[str] = []

    index = create_report(sweep, None, use_wandb=True, echo=printed.append)

    assert index.is_file()
    assert printed == [
        f"Report: {index}",
        "No W&B report: CommError: upsertView: permission denied",
    ]
