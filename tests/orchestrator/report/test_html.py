"""The offline HTML report of a real local sweep: every run, its metrics and figures; failed and
pending jobs; the Optuna section only when there is a search."""

import shutil
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli.main import main
from orchestrator.report.html import format_value, write_html_report
from orchestrator.report.model import read_sweep_report
from orchestrator.search.results import SearchResults
from orchestrator.state.sweep_dir import JobState, SweepDir
from spd.metric_names import (
    ALIVE,
    ML2R,
    MMCS,
    STOCHASTIC_RECON,
    STOCHASTIC_RECON_LAYERWISE,
    TARGET_CI_ERROR,
    C,
    loss_name,
    metric_name,
)
from tests.orchestrator.report.conftest import FinishedSweep, summary_of
from tests.orchestrator.report.html_page import ReportPage
from tests.orchestrator.short_sweeps import DIVERGED, write_sweep_file


def run_metric_names(summary: dict) -> list[str]:
    return [m for m in summary["metrics"] if m.partition("/")[2] not in summary["modules"]]


def test_the_sweep_ends_with_a_report_of_every_run_its_metrics_and_figures(
    finished_sweep: FinishedSweep,
) -> None:
    sweep = finished_sweep.sweep
    index = sweep.report / "index.html"
    assert f"Report: {index}" in finished_sweep.output
    assert "W&B is offline: the report is not published" in finished_sweep.output
    assert "wandb sync " in finished_sweep.output
    meta = sweep.read_meta()
    assert meta.title == "Report test sweep"  # --report_title is kept for rebuilds
    page = ReportPage(index)
    assert page.ids["sweep-id"] == f"{sweep.sweep_id} (grid)"
    assert page.ids["code-version"] == meta.code_version
    assert "--report_title" in page.ids["command"] and "--sweep" in page.ids["command"]
    assert "<title>Report test sweep</title>" in index.read_text()

    manifest = sweep.read_manifest()
    assert [j.experiment for j in manifest.jobs] == ["tms_5-2"] * 2 + ["tms_5-2-id"] * 2
    for job in manifest.jobs:
        (row,) = [r for r in page.table(job.experiment, "runs").records() if r["run"] == job.name]
        assert row["state"] == job.state.value
        if job.state != JobState.COMPLETED:
            continue
        summary = summary_of(sweep, job.job_id)
        names = run_metric_names(summary)
        assert {"loss/stochastic_recon", "alive/total", "C/total", "target_ci_error/total"} <= set(
            names
        )
        for metric in names:
            assert row[metric] == format_value(summary["metrics"][metric]), (job.name, metric)
        run_figures = {(sweep.report / href).resolve() for href in page.links if "figures/" in href}
        for figure in summary["figures"]:
            assert (sweep.run_dir(job.job_id).path / figure).resolve() in run_figures
        module_rows = [
            r for r in page.table(job.experiment, "modules").records() if r["run"] == job.name
        ]
        assert {r["module"] for r in module_rows} == set(summary["modules"])
        for r in module_rows:
            module = summary["modules"][r["module"]]
            assert (r["C"], r["alive"]) == (
                format_value(module["C"]),
                format_value(module["alive"]),
            )
            assert r["target_ci_error"] == format_value(module["target_ci_error"])
            assert r["mmcs"] == format_value(module["mmcs"]) and r["ml2r"] == format_value(
                module["ml2r"]
            )

    c_sweep = {j.params["C[linear1]"]: summary_of(sweep, j.job_id) for j in manifest.jobs[:2]}
    assert {c: s["modules"]["linear1"]["C"] for c, s in c_sweep.items()} == {5: 5, 10: 10}

    # Every image is a PNG beside the page; each experiment has its losses, alive-vs-C and best CI.
    assert all((sweep.report / src).is_file() and src.endswith(".png") for src in page.images)
    for experiment in ("tms_5-2", "tms_5-2-id"):
        for kind in ("losses", "alive", "best_ci_per_feature"):
            assert f"{experiment}_{kind}.png" in page.images
    completed = [j for j in manifest.jobs if j.experiment == "tms_5-2"]
    best = min(
        completed,
        key=lambda j: [
            summary_of(sweep, j.job_id)["metrics"][m]
            for m in ("target_ci_error/total", "loss/stochastic_recon")
        ],
    )
    best_figure = sweep.run_dir(best.job_id).figures / "ci_per_feature.png"
    assert (
        sweep.report / "tms_5-2_best_ci_per_feature.png"
    ).read_bytes() == best_figure.read_bytes()

    summary_rows = {r["experiment"]: r for r in page.tables[0].records()}
    assert page.tables[0].id == "summary"
    assert (summary_rows["tms_5-2"]["runs"], summary_rows["tms_5-2"]["completed"]) == ("2", "2")
    assert (summary_rows["tms_5-2-id"]["completed"], summary_rows["tms_5-2-id"]["failed"]) == (
        "1",
        "1",
    )
    assert summary_rows["tms_5-2"]["best run"] == best.name

    (failed,) = [j for j in manifest.jobs if j.state == JobState.FAILED]
    (item,) = page.list_items["failed@tms_5-2-id"]
    assert failed.name in item and DIVERGED in item and str(sweep.path / failed.log_path) in item
    assert (sweep.report / next(h for h in page.links if h.endswith("_log.out"))).is_file()


def test_the_top_of_the_page_shows_the_success_metrics_of_each_experiments_best_run(
    finished_sweep: FinishedSweep,
) -> None:
    sweep = finished_sweep.sweep
    page = ReportPage(sweep.report / "index.html")
    target_ci_error = metric_name(TARGET_CI_ERROR)
    completed = [j for j in sweep.read_manifest().jobs if j.state == JobState.COMPLETED]
    for experiment in ("tms_5-2", "tms_5-2-id"):
        summaries = {
            j.name: summary_of(sweep, j.job_id) for j in completed if j.experiment == experiment
        }
        best_name = min(
            summaries,
            key=lambda name: [
                summaries[name]["metrics"][m]
                for m in (target_ci_error, loss_name(STOCHASTIC_RECON))
            ],
        )
        best = summaries[best_name]
        key = f"{experiment}|"
        assert page.cells[key + "best"] == best_name
        n_solved = sum(s["metrics"][target_ci_error] == 0 for s in summaries.values())
        assert page.cells[key + "solved"] == f"{n_solved} of {len(summaries)}"
        for path, module in best["modules"].items():
            for column in (ALIVE, C, TARGET_CI_ERROR, MMCS, ML2R):
                assert page.cells[f"{key}{path}|{column}"] == format_value(module[column])
        for metric in (
            target_ci_error,
            loss_name(STOCHASTIC_RECON),
            loss_name(STOCHASTIC_RECON_LAYERWISE),
        ):
            assert page.cells[key + metric] == format_value(best["metrics"][metric])


def test_a_half_finished_sweep_lists_its_pending_jobs(
    finished_sweep: FinishedSweep, tmp_path: Path
) -> None:
    sweep = SweepDir(tmp_path / finished_sweep.sweep.sweep_id)
    shutil.copytree(finished_sweep.sweep.path, sweep.path)
    manifest = sweep.read_manifest()
    unfinished = manifest.jobs[1]  # tms_5-2, C[linear1]=10: as if never started
    sweep.run_dir(unfinished.job_id).summary.unlink()
    for key in ("backend", "local_job_id", "log_path"):
        setattr(unfinished, key, None)
    unfinished.state, unfinished.attempts = JobState.PENDING, 0
    sweep.write_manifest(manifest)

    result = CliRunner().invoke(
        main, ["report", str(sweep.path), "--no-wandb"], catch_exceptions=False
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Report: {sweep.report / 'index.html'}",
        f"W&B report spec: {sweep.report / 'wandb_report.json'}",  # written, not published
    ]
    page = ReportPage(sweep.report / "index.html")
    assert page.list_items["unfinished@tms_5-2"] == [f"{unfinished.name}: pending"]
    rows = {r["run"]: r for r in page.table("tms_5-2", "runs").records()}
    assert rows[unfinished.name]["state"] == "pending"
    assert rows[unfinished.name]["loss/stochastic_recon"] == "—"
    assert unfinished.name not in {r["run"] for r in page.table("tms_5-2", "modules").records()}
    summary_rows = {r["experiment"]: r for r in page.tables[0].records()}
    assert (summary_rows["tms_5-2"]["completed"], summary_rows["tms_5-2"]["unfinished"]) == (
        "1",
        "1",
    )
    assert page.ids["counts"] == "1 pending, 2 completed, 1 failed"


def test_report_of_an_unknown_sweep_is_a_clear_error(finished_sweep: FinishedSweep) -> None:
    result = CliRunner().invoke(main, ["report", str(finished_sweep.sweep.path.parent / "nope")])
    assert result.exit_code == 1
    assert "no sweep" in result.output and "nope" in result.output


def test_the_search_section_renders_only_for_a_search(
    finished_sweep: FinishedSweep, tmp_path: Path
) -> None:
    sweep = finished_sweep.sweep
    plot = sweep.report / "tms_5-2_losses.png"  # any PNG stands in for a search plot
    search = SearchResults(plots=[plot], best_configs={"best trial 3": "C:\n  linear1: 5\n"})

    index = write_html_report(read_sweep_report(sweep, search=search), tmp_path)

    page = ReportPage(index)
    assert "search_tms_5-2_losses.png" in page.images
    assert (tmp_path / "search_tms_5-2_losses.png").read_bytes() == plot.read_bytes()
    html = index.read_text()
    assert 'id="search"' in html and "best trial 3" in html and "linear1: 5" in html
    without = (sweep.report / "index.html").read_text()  # the sweep's own report: a grid, no search
    assert 'id="search"' not in without and "search_" not in without


def test_a_sweep_that_ran_nothing_yet_lists_every_job_as_pending(sweep_root: Path) -> None:
    sweep_file = write_sweep_file(
        Path("c.yaml"),
        {"tms_5-2": {"C": {"linear1": {"values": [5, 10]}, "linear2": {"values": [10, 20]}}}},
    )
    dry = CliRunner().invoke(
        main, ["--sweep", str(sweep_file), "--dry-run"], catch_exceptions=False
    )
    assert dry.exit_code == 0, dry.output
    (path,) = sweep_root.iterdir()
    assert not (path / "report").exists()  # a dry run makes no report

    result = CliRunner().invoke(main, ["report", path.name, "--title", "<b>C</b> grid"])

    assert result.exit_code == 0, result.output
    assert "No W&B report: the runs did not log to W&B" in result.output
    index = path / "report" / "index.html"
    page = ReportPage(index)
    names = [job.name for job in SweepDir(path).read_manifest().jobs]
    assert len(names) == 4
    assert page.list_items["unfinished@tms_5-2"] == [f"{name}: pending" for name in names]
    assert [r["state"] for r in page.table("tms_5-2", "runs").records()] == ["pending"] * 4
    assert page.images == [] and page.ids["counts"] == "4 pending"
    assert "<h1>&lt;b&gt;C&lt;/b&gt; grid</h1>" in index.read_text()  # escaped
