"""The sweep's report on W&B (through wandb-workspaces), with the HTML report's sections.

Runs are tagged with the sweep id and their experiment (orchestrator.backends.launch writes the tags into
each job's config), so every runset here is a tag filter: the runs of this sweep, of one
experiment. The report has a markdown block (sweep id, code version, command), and per experiment
line plots of the losses the runs logged and, for sweeps, a run comparer; each experiment also gets
a workspace view of its own. Building needs no network; only `publish` talks to W&B's servers.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from orchestrator.report.model import (
    HEADLINE_METRICS,
    ExperimentReport,
    SweepReport,
    logged_metric_keys,
)
from spd.metric_names import EVAL_PREFIX, LOSS_PREFIX
from spd.run import wandb_mode

REPORT_TITLE_MAX_CHARS = 128
"""W&B's limit on a report title."""


@dataclass(frozen=True)
class WandbViews:
    report: wr.Report
    workspaces: list[ws.Workspace]


def run_filters(sweep_id: str, experiment: str | None = None) -> list[expr.FilterExpr]:
    """The runs tagged with the sweep id (and with the experiment, when given)."""
    tags = [sweep_id] if experiment is None else [sweep_id, experiment]
    return [expr.Tags().isin([tag]) for tag in tags]


def plotted_metrics(experiment: ExperimentReport) -> list[str]:
    """What the panels show, among what the runs logged: training losses, eval losses and the
    eval headline metrics."""
    logged = logged_metric_keys(experiment.runs)
    training = [key for key in logged if key.startswith(LOSS_PREFIX)]
    eval_losses = [key for key in logged if key.startswith(EVAL_PREFIX + LOSS_PREFIX)]
    headline = [EVAL_PREFIX + m for m in HEADLINE_METRICS if EVAL_PREFIX + m in logged]
    return list(dict.fromkeys(training + eval_losses + headline))


def line_plots(metrics: list[str]) -> list[wr.LinePlot]:
    return [
        wr.LinePlot(title=metric, x="Step", y=[metric], log_y=metric.startswith(LOSS_PREFIX))
        for metric in metrics
    ]


def header_markdown(report: SweepReport) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in report.counts.items() if n)
    return "\n".join(
        [
            f"**Sweep:** `{report.sweep_id}` ({report.kind})  ",
            f"**Code version:** `{report.code_version}`  ",
            f"**Command:** `{report.command}`  ",
            f"**Jobs:** {counts}  ",
            f"**Runs directory:** `{report.path}`",
        ]
    )


def failed_markdown(experiment: ExperimentReport) -> str:
    return "\n".join(
        f"- **{run.name}** ({run.state.value}): {run.error or 'no error recorded'}; log `{run.log_path}`"
        for run in experiment.failed
    )


def experiment_blocks(report: SweepReport, experiment: ExperimentReport, entity: str) -> list:
    runset = wr.Runset(
        entity=entity,
        project=report.project,
        name=f"{report.sweep_id} {experiment.name}",
        filters=run_filters(report.sweep_id, experiment.name),
    )
    panels: list = line_plots(plotted_metrics(experiment))
    if len(experiment.runs) > 1:
        panels.append(wr.RunComparer(diff_only="split"))
    blocks: list = [wr.H2(experiment.name), wr.PanelGrid(runsets=[runset], panels=panels)]
    if experiment.failed:
        blocks += [wr.H3("Failed runs"), wr.MarkdownBlock(failed_markdown(experiment))]
    return blocks


def search_blocks(report: SweepReport) -> list:
    if report.search is None:
        return []
    blocks: list = [wr.H2("Search: best configs")]
    for name, config in report.search.best_configs.items():
        blocks += [wr.H3(name), wr.CodeBlock(code=config, language="yaml")]
    return blocks


def experiment_workspace(
    report: SweepReport, experiment: ExperimentReport, entity: str
) -> ws.Workspace:
    metrics = plotted_metrics(experiment)
    training = [m for m in metrics if m.startswith(LOSS_PREFIX)]
    evaluation = [m for m in metrics if m.startswith(EVAL_PREFIX)]
    return ws.Workspace(
        entity=entity,
        project=report.project,
        name=f"{report.sweep_id} {experiment.name}",
        sections=[
            ws.Section(name="Training losses", panels=line_plots(training), is_open=True),
            ws.Section(name="Evaluation", panels=line_plots(evaluation), is_open=True),
        ],
        runset_settings=ws.RunsetSettings(filters=run_filters(report.sweep_id, experiment.name)),
    )


def build_wandb_views(report: SweepReport, entity: str) -> WandbViews:
    """The report and one workspace per experiment; nothing is sent anywhere."""
    if report.project is None:
        raise ValueError(f"sweep {report.sweep_id} has no W&B project: its runs did not log to W&B")
    blocks: list = [wr.MarkdownBlock(header_markdown(report)), wr.TableOfContents()]
    blocks += search_blocks(report)
    for experiment in report.experiments:
        blocks += experiment_blocks(report, experiment, entity)
    wandb_report = wr.Report(
        entity=entity,
        project=report.project,
        title=report.title[:REPORT_TITLE_MAX_CHARS],
        description=f"Sweep {report.sweep_id}: {len(report.runs)} runs of "
        f"{', '.join(e.name for e in report.experiments)}",
        blocks=blocks,
        width="fluid",
    )
    workspaces = [experiment_workspace(report, e, entity) for e in report.experiments]
    return WandbViews(wandb_report, workspaces)


def publish(views: WandbViews) -> list[str]:
    """Save the report and the workspaces on W&B; their URLs."""
    views.report.save()
    urls = [views.report.url]
    for workspace in views.workspaces:
        workspace.save()
        urls.append(workspace.url)
    return urls


def offline_run_dirs(report: SweepReport) -> list[Path]:
    return sorted(p for run in report.runs for p in run.run_dir.path.glob("wandb/offline-run-*"))


def publish_wandb_report(report: SweepReport, echo: Callable[[str], None]) -> list[str]:
    """Create the W&B report where the runs log to W&B and W&B is online; otherwise say why not
    (and how to upload offline runs). Returns the URLs."""
    if report.project is None:
        echo("No W&B report: the runs did not log to W&B (no --project).")
        return []
    if wandb_mode() != "online":
        offline = offline_run_dirs(report)
        echo("No W&B report: W&B is offline. Upload the runs, then rebuild the report online:")
        if offline:
            echo(f"  wandb sync {' '.join(str(p) for p in offline)}")
        echo(f"  spd-sweep report {report.sweep_id} --wandb")
        return []
    import wandb

    entity = os.environ.get("WANDB_ENTITY") or wandb.Api().default_entity
    urls = publish(build_wandb_views(report, entity))
    for url in urls:
        echo(f"W&B: {url}")
    return urls
