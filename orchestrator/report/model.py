"""What a sweep's report says, read from disk alone: the sweep directory and its run directories.

Nothing here needs the orchestrator that launched the sweep to be alive: job states come from the
manifest brought up to date read-only (as `spd-sweep status` does), results from each run's
summary.json, and loss curves from metrics.jsonl, which also holds the curves of runs still going.
Metric names are those of spd.metric_names. A search's trials come from its Optuna study, read
only for a search: the report of a grid sweep does not import optuna.
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
    CI_MASKED_RECON,
    EVAL_PREFIX,
    LOSS_PREFIX,
    ML2R,
    MMCS,
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

SUCCESS_MODULE_COLUMNS = (ALIVE, C, TARGET_CI_ERROR, MMCS, ML2R)
"""Per module of the best run, at the top of the page: did the decomposition find the components
(alive against C, distance to the known CI pattern, match to the target weights)?"""
SUCCESS_RUN_METRICS = (
    metric_name(TARGET_CI_ERROR),
    loss_name(STOCHASTIC_RECON),
    loss_name(STOCHASTIC_RECON_LAYERWISE),
    loss_name(CI_MASKED_RECON),
)
"""Whole-run values of the best run at the top of the page: CI pattern error and reconstruction."""
SOLVED_METRIC = metric_name(TARGET_CI_ERROR)
"""A run with this at 0 found the known CI pattern exactly; the top of the page counts them."""

UNFINISHED = frozenset(JobState) - FINISHED
SEARCH_KIND = "optuna"
"""SweepMeta.kind of a search."""
EVAL_LOSS_PREFIX = EVAL_PREFIX + LOSS_PREFIX
"""How metrics.jsonl names the loss terms of an evaluation."""


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
    eval_loss_curves: dict[str, Curve]
    """`loss/<term>` -> its values at the evaluations so far."""
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
    def with_results(self) -> list[RunReport]:
        """Completed runs with a summary: a search's agents complete without one."""
        return [run for run in self.completed if run.metrics]

    @property
    def best_by(self) -> list[str]:
        runs = self.with_results
        return [m for m in BEST_RUN_METRICS if runs and all(m in r.metrics for r in runs)]

    @property
    def best(self) -> RunReport | None:
        if not self.with_results:
            return None
        return min(self.with_results, key=lambda run: [run.metrics[m] for m in self.best_by])

    @property
    def success_module_columns(self) -> list[str]:
        """The per-module success values the best run has."""
        best = self.best
        present = ordered_union(best.modules.values()) if best else []
        return [column for column in SUCCESS_MODULE_COLUMNS if column in present]

    @property
    def success_run_metrics(self) -> list[str]:
        """The whole-run success values the best run has (toy models alone know a CI pattern)."""
        best = self.best
        return [m for m in SUCCESS_RUN_METRICS if best and m in best.metrics]

    @property
    def n_solved(self) -> int | None:
        """Completed runs that found the known CI pattern exactly; None where the experiment
        does not know one."""
        if not any(SOLVED_METRIC in run.metrics for run in self.with_results):
            return None
        return sum(run.metrics.get(SOLVED_METRIC) == 0 for run in self.with_results)


@dataclass(frozen=True)
class TrialRow:
    """One trial of a search as its table shows it."""

    number: int
    state: str
    params: dict[str, Any]
    values: list[float] | None
    """Objective values, in the order of the search's objectives; None until complete."""
    pruned_step: int | None
    """The last step it reported before it was pruned."""
    error: str | None
    run_dir: RunDir | None
    """Where it trained (None before it started)."""
    logged_metrics: list[str]
    """Every metric name its run logged (to W&B too, when it logs there)."""
    figures: list[Path]


@dataclass(frozen=True)
class SearchTrials:
    objectives: list[str]
    trials: list[TrialRow]
    best_numbers: list[int]
    """The best trial, or the Pareto front (orchestrator.search.results.best_trials)."""

    @property
    def best(self) -> list[TrialRow]:
        return [trial for trial in self.trials if trial.number in self.best_numbers]

    @property
    def param_names(self) -> list[str]:
        return ordered_union(trial.params for trial in self.trials)

    @property
    def state_counts(self) -> dict[str, int]:
        """Trial state -> number of trials, in order of first appearance."""
        states = ordered_union({trial.state: None} for trial in self.trials)
        return {state: sum(trial.state == state for trial in self.trials) for state in states}


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
    trials: SearchTrials | None = None
    """A search's trials (its jobs are the agents that ran them)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Job state -> number of jobs."""

    @property
    def runs(self) -> list[RunReport]:
        return [run for experiment in self.experiments for run in experiment.runs]


def ordered_union(mappings: Any) -> list[str]:
    """The keys of several mappings, each once, in order of first appearance."""
    return list(dict.fromkeys(key for mapping in mappings for key in mapping))


@dataclass(frozen=True)
class MetricLog:
    train_losses: dict[str, Curve]
    eval_losses: dict[str, Curve]
    """Keyed `loss/<term>` like the training curves, to draw them in the same panel."""
    names: list[str]


def append_point(curves: dict[str, Curve], key: str, step: int, value: float) -> None:
    curve = curves.setdefault(key, Curve([], []))
    curve.steps.append(step)
    curve.values.append(value)


def read_metric_log(metrics_path: Path) -> MetricLog:
    """The training and evaluation `loss/*` curves of metrics.jsonl and every metric name in it.
    A running job may be mid-way through writing its last line; that line is skipped."""
    train: dict[str, Curve] = {}
    evaluation: dict[str, Curve] = {}
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
                append_point(train, key, step, value)
            elif key.startswith(EVAL_LOSS_PREFIX):
                append_point(evaluation, key.removeprefix(EVAL_PREFIX), step, value)
    return MetricLog(train, evaluation, list(names))


def summary_of(run_dir: RunDir) -> RunSummary | None:
    return RunSummary.read(run_dir.summary) if run_dir.is_complete() else None


def run_figures(run_dir: RunDir, summary: RunSummary | None) -> list[Path]:
    return [run_dir.path / name for name in summary.figures] if summary else []


def read_run(sweep: SweepDir, record: JobRecord) -> RunReport:
    run_dir = sweep.run_dir(record.job_id)
    summary = summary_of(run_dir)
    log = read_metric_log(run_dir.metrics)
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
        figures=run_figures(run_dir, summary),
        loss_curves=log.train_losses,
        eval_loss_curves=log.eval_losses,
        logged_metrics=log.names,
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
    trials = read_search_trials(sweep) if meta.kind == SEARCH_KIND else None
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
        trials=trials,
        counts=counts,
    )


def read_search_trials(sweep: SweepDir) -> SearchTrials:
    """The trials that count towards the search's n_trials, from its study (read-only)."""
    # Imported here: only a search's report pays for optuna.
    from optuna.trial import TrialState

    from orchestrator.search.launch import read_spec, study_of
    from orchestrator.search.results import best_trials, trial_run_dir
    from orchestrator.search.study import ERROR_ATTR, counted_trials

    spec = read_spec(sweep)
    all_trials = study_of(sweep, spec).get_trials(deepcopy=False)
    trials = counted_trials(all_trials)
    return SearchTrials(
        objectives=list(spec.search.objectives),
        best_numbers=[trial.number for trial in best_trials(all_trials, spec.search)],
        trials=[
            TrialRow(
                number=trial.number,
                state=trial.state.name.lower(),
                params=trial.params,
                values=trial.values,
                pruned_step=trial.last_step if trial.state == TrialState.PRUNED else None,
                error=trial.user_attrs.get(ERROR_ATTR),
                run_dir=(run_dir := trial_run_dir(sweep, trial)),
                logged_metrics=read_metric_log(run_dir.metrics).names if run_dir else [],
                figures=run_figures(run_dir, summary_of(run_dir)) if run_dir else [],
            )
            for trial in trials
        ],
    )
