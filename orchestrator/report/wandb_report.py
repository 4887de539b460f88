"""The sweep's report on W&B (through wandb-workspaces), with the HTML report's sections.

Runs are tagged with the sweep id and their experiment (orchestrator.state.run_tags: written into
each job's config, and into each trial's by the search agents), so every runset here is a tag
filter: the runs of this sweep, of one experiment. The report has a markdown block (sweep id, code version, command), and per experiment
line plots of the losses the runs logged, their figures and, for sweeps, a run comparer; each
experiment also gets a workspace view of its own.

Every report build writes the report as a spec (orchestrator.report.wandb_spec) with no network;
publishing builds wandb-workspaces' objects from the spec, and only that talks to W&B's servers.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from orchestrator.report import wandb_spec as spec
from orchestrator.report.model import (
    HEADLINE_METRICS,
    ExperimentReport,
    RunReport,
    SweepReport,
    TrialRow,
    ordered_union,
)
from orchestrator.state.run_tags import run_tags
from spd.metric_names import EVAL_PREFIX, FIGURE_PREFIX, LOSS_PREFIX
from spd.run import wandb_mode

REPORT_TITLE_MAX_CHARS = 128
"""W&B's limit on a report title."""


@dataclass(frozen=True)
class WandbViews:
    report: wr.Report
    workspaces: list[ws.Workspace]


def run_filters(tags: list[str]) -> list[expr.FilterExpr]:
    """The runs that carry all of `tags`."""
    return [expr.Tags().isin([tag]) for tag in tags]


def logged_runs(report: SweepReport, experiment: ExperimentReport) -> list[RunReport | TrialRow]:
    """The experiment's runs that logged to W&B: a grid's jobs, or a search's trials that
    started (its jobs are the agents that ran them)."""
    if report.trials is not None:
        return [trial for trial in report.trials.trials if trial.run_dir is not None]
    return list(experiment.runs)


def plotted_metrics(runs: list[RunReport | TrialRow]) -> list[str]:
    """What the panels show, among what the runs logged: training losses, eval losses and the
    eval headline metrics."""
    logged = ordered_union(dict.fromkeys(run.logged_metrics) for run in runs)
    training = [key for key in logged if key.startswith(LOSS_PREFIX)]
    eval_losses = [key for key in logged if key.startswith(EVAL_PREFIX + LOSS_PREFIX)]
    headline = [EVAL_PREFIX + m for m in HEADLINE_METRICS if EVAL_PREFIX + m in logged]
    return list(dict.fromkeys(training + eval_losses + headline))


def line_plot_specs(metrics: list[str]) -> list[spec.LinePlot]:
    return [spec.LinePlot(metric=m, log_y=m.startswith(LOSS_PREFIX)) for m in metrics]


def figure_keys(runs: list[RunReport | TrialRow]) -> list[str]:
    """The W&B image keys of the figures the runs wrote (spd.run.log_figures)."""
    return ordered_union({FIGURE_PREFIX + path.stem: None} for run in runs for path in run.figures)


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


def experiment_blocks(report: SweepReport, experiment: ExperimentReport) -> list[spec.Block]:
    runs = logged_runs(report, experiment)
    panels = spec.RunPanels(
        name=f"{report.sweep_id} {experiment.name}",
        tags=run_tags(report.sweep_id, experiment.name),
        line_plots=line_plot_specs(plotted_metrics(runs)),
        figures=figure_keys(runs),
        run_comparer=len(runs) > 1,
    )
    blocks: list[spec.Block] = [spec.Heading(level=2, text=experiment.name), panels]
    if experiment.failed:
        blocks += [
            spec.Heading(level=3, text="Failed runs"),
            spec.Markdown(text=failed_markdown(experiment)),
        ]
    return blocks


def search_blocks(report: SweepReport) -> list[spec.Block]:
    if report.search is None:
        return []
    blocks: list[spec.Block] = [spec.Heading(level=2, text="Search: best configs")]
    for name, config in report.search.best_configs.items():
        blocks += [spec.Heading(level=3, text=name), spec.Code(code=config, language="yaml")]
    return blocks


def experiment_workspace(report: SweepReport, experiment: ExperimentReport) -> spec.Workspace:
    metrics = plotted_metrics(logged_runs(report, experiment))
    return spec.Workspace(
        name=f"{report.sweep_id} {experiment.name}",
        tags=run_tags(report.sweep_id, experiment.name),
        sections=[
            spec.WorkspaceSection(
                name="Training losses",
                line_plots=line_plot_specs([m for m in metrics if m.startswith(LOSS_PREFIX)]),
            ),
            spec.WorkspaceSection(
                name="Evaluation",
                line_plots=line_plot_specs([m for m in metrics if m.startswith(EVAL_PREFIX)]),
            ),
        ],
    )


def wandb_report_spec(report: SweepReport) -> spec.WandbReportSpec:
    """The report and one workspace per experiment, from the sweep directory alone."""
    if report.project is None:
        raise ValueError(f"sweep {report.sweep_id} has no W&B project: its runs did not log to W&B")
    blocks: list[spec.Block] = [spec.Markdown(text=header_markdown(report)), spec.TableOfContents()]
    blocks += search_blocks(report)
    for experiment in report.experiments:
        blocks += experiment_blocks(report, experiment)
    return spec.WandbReportSpec(
        # The runs log to WANDB_ENTITY when it is set; offline runs otherwise get their entity
        # when they are synced, so it is looked up when publishing.
        entity=os.environ.get("WANDB_ENTITY") or None,
        project=report.project,
        title=report.title[:REPORT_TITLE_MAX_CHARS],
        description=f"Sweep {report.sweep_id}: {len(all_logged_runs(report))} runs of "
        f"{', '.join(e.name for e in report.experiments)}",
        blocks=blocks,
        workspaces=[experiment_workspace(report, e) for e in report.experiments],
    )


def line_plots(plots: list[spec.LinePlot]) -> list[wr.LinePlot]:
    return [wr.LinePlot(title=p.metric, x="Step", y=[p.metric], log_y=p.log_y) for p in plots]


def panel_grid(panels: spec.RunPanels, entity: str, project: str) -> wr.PanelGrid:
    runset = wr.Runset(
        entity=entity, project=project, name=panels.name, filters=run_filters(panels.tags)
    )
    shown: list = line_plots(panels.line_plots)
    if panels.figures:
        shown.append(wr.MediaBrowser(title="Figures", media_keys=panels.figures))
    if panels.run_comparer:
        shown.append(wr.RunComparer(diff_only="split"))
    return wr.PanelGrid(runsets=[runset], panels=shown)


def wandb_block(block: spec.Block, entity: str, project: str) -> wr.interface.Block:
    match block:
        case spec.Markdown(text=text):
            return wr.MarkdownBlock(text)
        case spec.Heading(level=2, text=text):
            return wr.H2(text)
        case spec.Heading(text=text):
            return wr.H3(text)
        case spec.TableOfContents():
            return wr.TableOfContents()
        case spec.Code(code=code, language=language):
            return wr.CodeBlock(code=code, language=language)
        case spec.RunPanels():
            return panel_grid(block, entity, project)
    raise TypeError(f"unknown report block {block!r}")


def wandb_workspace(workspace: spec.Workspace, entity: str, project: str) -> ws.Workspace:
    return ws.Workspace(
        entity=entity,
        project=project,
        name=workspace.name,
        sections=[
            ws.Section(name=s.name, panels=line_plots(s.line_plots), is_open=True)
            for s in workspace.sections
        ],
        runset_settings=ws.RunsetSettings(filters=run_filters(workspace.tags)),
    )


def build_wandb_views(report_spec: spec.WandbReportSpec, entity: str) -> WandbViews:
    """wandb-workspaces' report and workspaces of the spec, in `entity`; nothing is sent."""
    project = report_spec.project
    wandb_report = wr.Report(
        entity=entity,
        project=project,
        title=report_spec.title,
        description=report_spec.description,
        blocks=[wandb_block(b, entity, project) for b in report_spec.blocks],
        width="fluid",
    )
    workspaces = [wandb_workspace(w, entity, project) for w in report_spec.workspaces]
    return WandbViews(wandb_report, workspaces)


def publish(views: WandbViews) -> list[str]:
    """Save the report and the workspaces on W&B; their URLs, the report's first."""
    views.report.save()
    urls = [views.report.url]
    for workspace in views.workspaces:
        workspace.save()
        urls.append(workspace.url)
    return urls


def all_logged_runs(report: SweepReport) -> list[RunReport | TrialRow]:
    return [run for e in report.experiments for run in logged_runs(report, e)]


def offline_run_dirs(report: SweepReport) -> list[Path]:
    run_dirs = [run.run_dir for run in all_logged_runs(report) if run.run_dir is not None]
    return sorted(p for run_dir in run_dirs for p in run_dir.path.glob("wandb/offline-run-*"))


def publish_spec(report_spec: spec.WandbReportSpec, echo: Callable[[str], None]) -> None:
    """Publish the spec whatever WANDB_MODE says; say what was published, or the one reason why
    nothing was."""
    import wandb

    try:
        api = wandb.Api()
    except wandb.errors.UsageError:
        echo("No W&B report: no W&B credentials (WANDB_API_KEY is unset and no `wandb login`).")
        return
    try:
        entity = report_spec.entity or os.environ.get("WANDB_ENTITY") or api.default_entity
        urls = publish(build_wandb_views(report_spec, entity))
    # W&B's servers or login; ValueError: a runset's project is not on W&B (runs not synced)
    except (wandb.errors.Error, ValueError) as e:
        echo(f"No W&B report: {type(e).__name__}: {e}")
        return
    echo(f"W&B report: {urls[0]}")
    for url in urls[1:]:
        echo(f"W&B workspace: {url}")


def write_wandb_report(
    report: SweepReport, report_dir: Path, publish_it: bool | None, echo: Callable[[str], None]
) -> None:
    """Write the W&B report's spec where the runs log to W&B, and publish it: when `publish_it`,
    or, when it is None, where W&B is online (otherwise say how to publish it later)."""
    if report.project is None:
        if publish_it is not False:
            echo("No W&B report: the runs did not log to W&B (no --project).")
        return
    report_spec = wandb_report_spec(report)
    path = report_dir / spec.WANDB_REPORT_SPEC
    report_spec.write(path)
    echo(f"W&B report spec: {path}")
    if publish_it is None and wandb_mode() != "online":
        offline = offline_run_dirs(report)
        echo("W&B is offline: the report is not published. Upload the runs, then publish it:")
        if offline:
            echo(f"  wandb sync {' '.join(str(p) for p in offline)}")
        echo(f"  spd-sweep report {report.sweep_id} --wandb")
    elif publish_it is not False:
        publish_spec(report_spec, echo)
