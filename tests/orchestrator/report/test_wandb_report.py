"""The W&B report of a real local sweep whose runs logged to W&B offline: its spec, written by the
sweep's report with no network, checked against what the runs really logged and read back; only
W&B's network client (saving, the API's login) is replaced."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import wandb
import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from click.testing import CliRunner
from wandb_workspaces import expr

from orchestrator.cli.main import main
from orchestrator.cli.report import create_report
from orchestrator.report.model import read_sweep_report
from orchestrator.report.wandb_report import build_wandb_views, wandb_report_spec
from orchestrator.report.wandb_spec import WANDB_REPORT_SPEC, WandbReportSpec
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


def saved_spec(sweep: SweepDir) -> WandbReportSpec:
    return WandbReportSpec.read(sweep.report / WANDB_REPORT_SPEC)


def test_the_sweep_keeps_its_wandb_report_offline_as_a_spec(finished_sweep: FinishedSweep) -> None:
    sweep = finished_sweep.sweep
    spec_path = sweep.report / WANDB_REPORT_SPEC
    assert f"W&B report spec: {spec_path}" in finished_sweep.output
    assert f"spd-sweep report {sweep.sweep_id} --wandb" in finished_sweep.output
    spec = saved_spec(sweep)
    assert (spec.entity, spec.project, spec.title) == (None, PROJECT, "Report test sweep")
    # Rebuilt from the sweep directory: the same spec.
    assert wandb_report_spec(read_sweep_report(sweep)) == spec


def test_wandb_report_structure_matches_what_the_runs_logged(finished_sweep: FinishedSweep) -> None:
    sweep = finished_sweep.sweep
    views = build_wandb_views(saved_spec(sweep), ENTITY)
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
        (media,) = [p for p in grid.panels if isinstance(p, wr.MediaBrowser)]
        assert "figures/component_norms" in media.media_keys
        assert set(media.media_keys) <= logged  # the final figures, as W&B images
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


def test_the_spec_round_trips(finished_sweep: FinishedSweep, tmp_path: Path) -> None:
    spec = wandb_report_spec(read_sweep_report(finished_sweep.sweep))
    spec.write(tmp_path / WANDB_REPORT_SPEC)
    read = WandbReportSpec.read(tmp_path / WANDB_REPORT_SPEC)
    assert read == spec
    written, reread = build_wandb_views(spec, ENTITY), build_wandb_views(read, ENTITY)
    # Equal but for the random `_id` of each runset and panel, which repr leaves out.
    assert [repr(b) for b in reread.report.blocks] == [repr(b) for b in written.report.blocks]
    assert repr(reread.report) == repr(written.report)
    assert repr(reread.workspaces) == repr(written.workspaces)
    assert "MediaBrowser" in repr(reread.report) and "RunComparer" in repr(reread.report)


class FakeApi:
    """W&B's API client: the default entity and the app URL (the real one logs in online)."""

    default_entity = ENTITY
    client = SimpleNamespace(app_url="https://wandb.test")

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What is saved on W&B; only the network call is replaced."""
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
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    return saved


@pytest.fixture
def sweep_copy(finished_sweep: FinishedSweep, tmp_path: Path) -> SweepDir:
    """The finished sweep, to rebuild its report in."""
    sweep = SweepDir(tmp_path / "sweep")
    shutil.copytree(finished_sweep.sweep.path, sweep.path)
    shutil.rmtree(sweep.report)
    return sweep


def test_report_wandb_publishes_the_spec_while_the_shell_is_still_offline(
    sweep_copy: SweepDir, saved: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_MODE", "offline")

    result = CliRunner().invoke(main, ["report", str(sweep_copy.path), "--wandb"])

    assert result.exit_code == 0, result.output
    views = build_wandb_views(saved_spec(sweep_copy), ENTITY)
    report, *workspaces = saved
    assert isinstance(report, wr.Report) and (report.entity, report.id) == (ENTITY, "report-1")
    views.report.id = report.id  # saving gave it one
    # Equal but for the random `_id` of each runset and panel, which repr leaves out.
    assert repr(report) == repr(views.report) and repr(workspaces) == repr(views.workspaces)
    base = f"https://wandb.test/{ENTITY}/{PROJECT}"
    lines = result.output.splitlines()
    assert lines[-3] == f"W&B report: {base}/reports/Report-test-sweep--report-1"
    assert lines[-2].startswith(f"W&B workspace: {base}?nw=view-2")
    assert lines[-1].startswith(f"W&B workspace: {base}?nw=view-3")


def test_without_the_flag_an_offline_shell_publishes_nothing(
    sweep_copy: SweepDir, saved: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    for flag in ([], ["--no-wandb"]):
        result = CliRunner().invoke(main, ["report", str(sweep_copy.path), *flag])
        assert result.exit_code == 0, result.output
        assert (sweep_copy.report / WANDB_REPORT_SPEC).is_file()
        assert ("W&B is offline" in result.output) == (flag == [])
    assert saved == []


def test_report_wandb_without_credentials_says_so(
    sweep_copy: SweepDir, saved: list[object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))

    result = CliRunner().invoke(main, ["report", str(sweep_copy.path), "--wandb"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "No W&B report: no W&B credentials (WANDB_API_KEY is unset and no `wandb login`)."
    )
    assert saved == []


def test_a_failed_publication_is_reported_and_the_html_report_stands(
    sweep_copy: SweepDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: wr.Report, draft: bool = False, clone: bool = False) -> wr.Report:
        raise wandb.errors.CommError("upsertView: permission denied")

    monkeypatch.setattr(wr.Report, "save", refuse)
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_MODE", "online")
    printed: list[str] = []

    index = create_report(sweep_copy, None, use_wandb=None, echo=printed.append)

    assert index.is_file()
    assert printed == [
        f"Report: {index}",
        f"W&B report spec: {sweep_copy.report / WANDB_REPORT_SPEC}",
        "No W&B report: CommError: upsertView: permission denied",
    ]
