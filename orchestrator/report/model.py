"""What a sweep's report says, read from disk alone: the sweep directory and its run directories.

Nothing here needs the orchestrator that launched the sweep to be alive: job states come from the
manifest brought up to date read-only (as `spd-sweep status` does), results from each run's
summary.json, and loss curves from metrics.jsonl, which also holds the curves of runs still going.
Metric names are those of spd.metric_names.
"""

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.backends.track import FINISHED, refresh
from orchestrator.state.sweep_dir import JobRecord, JobState, SweepDir
from spd.metric_names import (
    ALIVE,
    CI_L0,
    LOSS_PREFIX,
    STOCHASTIC_RECON,
    STOCHASTIC_RECON_LAYERWISE,
    TARGET_CI_ERROR,
    C,
    loss_name,
    metric_name,
)
from spd.run_dir import RunDir
from spd.run_summary import RunSummary

if TYPE_CHECKING:  # only the type: reading a report does not need optuna
    from orchestrator.search.results import SearchResults


BEST_RUN_METRICS = (metric_name(TARGET_CI_ERROR), loss_name(STOCHASTIC_RECON))
"""The best run of an experiment is the lowest in these, in order, among those every completed run
has: distance to the known CI pattern first (toy models), then reconstruction."""

HEADLINE_METRICS = (
    loss_name(STOCHASTIC_RECON),
    loss_name(STOCHASTIC_RECON_LAYERWISE),
    metric_name(CI_L0),
    metric_name(ALIVE),
    metric_name(C),
    metric_name(TARGET_CI_ERROR),
)
"""Columns of the cross-experiment summary, each shown where an experiment's runs have it."""

UNFINISHED = frozenset(JobState) - FINISHED


@dataclass(frozen=True)
class Curve:
    steps: list[int]
    values: list[float]


@dataclass(frozen=True)
class RunReport:
    job_id: str
    name: str
    experiment: str
    params: dict[str, Any]
    state: JobState
    error: str | None
    log_path: Path | None
    run_dir: RunDir
    metrics: dict[str, float]
    """Final metrics (summary.json); empty until the run completed."""
    modules: dict[str, dict[str, Any]]
    """Module path -> {pattern, C, alive, ci_l0, ...} (summary.json); empty until completed."""
    figures: list[Path]
    loss_curves: dict[str, Curve]
    """`loss/<term>` -> its training curve so far."""
    logged_metrics: list[str]
    """Every metric name in metrics.jsonl: what the run logged (to W&B too, when it logs there)."""

    @property
    def short_name(self) -> str:
        """The name without its experiment prefix: what was swept (or the experiment itself)."""
        return self.name.removeprefix(self.experiment).lstrip("-_") or self.name

    def figure(self, stem: str) -> Path | None:
        return next((path for path in self.figures if path.stem == stem), None)


@dataclass(frozen=True)
class ExperimentReport:
    name: str
    runs: list[RunReport]

    @property
    def completed(self) -> list[RunReport]:
        return [run for run in self.runs if run.state == JobState.COMPLETED]

    @property
    def failed(self) -> list[RunReport]:
        return [run for run in self.runs if run.state in (JobState.FAILED, JobState.CANCELLED)]

    @property
    def unfinished(self) -> list[RunReport]:
        return [run for run in self.runs if run.state in UNFINISHED]

    @property
    def param_names(self) -> list[str]:
        return ordered_union(run.params for run in self.runs)

    @property
    def run_metric_names(self) -> list[str]:
        """Metrics of a whole run (losses and totals), not of one module."""
        return [
            name
            for name in ordered_union(run.metrics for run in self.completed)
            if name.partition("/")[2] not in self.module_paths
        ]

    @property
    def module_paths(self) -> list[str]:
        return ordered_union(run.modules for run in self.completed)

    @property
    def module_columns(self) -> list[str]:
        """Per-module values the runs have (C, alive, ci_l0, target_ci_error, mmcs, ml2r...)."""
        return [
            key
            for key in ordered_union(m for run in self.completed for m in run.modules.values())
            if key != "pattern"
        ]

    @property
    def best_by(self) -> list[str]:
        return [
            m
            for m in BEST_RUN_METRICS
            if self.completed and all(m in r.metrics for r in self.completed)
        ]

    @property
    def best(self) -> RunReport | None:
        if not self.completed:
            return None
        return min(self.completed, key=lambda run: [run.metrics[m] for m in self.best_by])


@dataclass(frozen=True)
class SweepReport:
    path: Path
    sweep_id: str
    kind: str
    title: str
    code_version: str
    command: str
    created: str
    project: str | None
    experiments: list[ExperimentReport]
    search: "SearchResults | None" = None
    counts: dict[str, int] = field(default_factory=dict)
    """Job state -> number of jobs."""

    @property
    def runs(self) -> list[RunReport]:
        return [run for experiment in self.experiments for run in experiment.runs]


def ordered_union(mappings: Any) -> list[str]:
    """The keys of several mappings, each once, in order of first appearance."""
    return list(dict.fromkeys(key for mapping in mappings for key in mapping))


def read_metric_log(metrics_path: Path) -> tuple[dict[str, Curve], list[str]]:
    """The training `loss/*` curves of metrics.jsonl and every metric name in it. A running job
    may be mid-way through writing its last line; that line is skipped."""
    curves: dict[str, Curve] = {}
    names: dict[str, None] = {}
    lines = metrics_path.read_text().splitlines() if metrics_path.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record.pop("step")
        names |= dict.fromkeys(record)
        for key, value in record.items():
            if key.startswith(LOSS_PREFIX):
                curve = curves.setdefault(key, Curve([], []))
                curve.steps.append(step)
                curve.values.append(value)
    return curves, list(names)


def logged_metric_keys(runs: list[RunReport]) -> list[str]:
    return ordered_union(dict.fromkeys(run.logged_metrics) for run in runs)


def read_run(sweep: SweepDir, record: JobRecord) -> RunReport:
    run_dir = sweep.run_dir(record.job_id)
    summary = RunSummary.read(run_dir.summary) if run_dir.is_complete() else None
    curves, logged = read_metric_log(run_dir.metrics)
    return RunReport(
        job_id=record.job_id,
        name=record.name,
        experiment=record.experiment,
        params=record.params,
        state=record.state,
        error=record.error,
        log_path=sweep.path / record.log_path if record.log_path else None,
        run_dir=run_dir,
        metrics=summary.metrics if summary else {},
        modules={
            path: module.model_dump(exclude_none=True)
            for path, module in (summary.modules.items() if summary else ())
        },
        figures=[run_dir.path / name for name in summary.figures] if summary else [],
        loss_curves=curves,
        logged_metrics=logged,
    )


def read_sweep_report(
    sweep: SweepDir, title: str | None = None, search: "SearchResults | None" = None
) -> SweepReport:
    """The report of a sweep as it stands now (also while its jobs run)."""
    meta = sweep.read_meta()
    manifest = sweep.read_manifest()
    refresh(sweep, manifest)  # read-only: the sweep's own orchestrator writes the manifest
    runs = [read_run(sweep, record) for record in manifest.jobs]
    experiments = [
        ExperimentReport(name, [run for run in runs if run.experiment == name])
        for name in dict.fromkeys(run.experiment for run in runs)
    ]
    counts = {state.value: sum(run.state == state for run in runs) for state in JobState}
    return SweepReport(
        path=sweep.path,
        sweep_id=meta.sweep_id,
        kind=meta.kind,
        title=title or meta.title or f"SPD {meta.kind} {meta.sweep_id}",
        code_version=meta.code_version,
        command=shlex.join(meta.last_command),
        created=meta.created,
        project=meta.project,
        experiments=experiments,
        search=search,
        counts=counts,
    )
