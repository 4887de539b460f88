"""The study of a search: its storage, sampler and pruner, and which of its trials count.

Storage: by default Optuna's journal file in the sweep directory (`SweepDir.study_journal`), which
works across SLURM nodes on a shared filesystem and needs no server; `sqlite:///...` and
`postgresql://...` URLs go to Optuna's RDB storage. Both record a heartbeat of every running
trial: a trial whose worker was killed stops beating, the next worker to start a trial marks it
failed, and RetryHeartbeatStaleTrialCallback enqueues it again with the same parameters.

The journal storage has no heartbeat of its own in Optuna, so `HeartbeatJournalStorage` keeps one
as a trial system attribute (wall-clock time; the nodes of a cluster share a clock closely enough
for a grace period of minutes).

This module is the one place that uses Optuna's internals (`optuna.storages._heartbeat`), tested
with the version pyproject pins.

The study's name is the sweep id; the same command finds the same sweep, so it continues the
same study. A trial that only exists because two workers asked at once past `n_trials` is a
"surplus" trial: pruned at once and not counted.
"""

import datetime as dt
import time
import warnings
from collections.abc import Callable

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from orchestrator.search.spec import SearchFile
from orchestrator.state.sweep_dir import SweepDir

HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 180
"""A running trial without a heartbeat for this long belongs to a dead worker."""
MAX_RETRIES = 3
"""How often a trial of a killed worker is tried again."""

HEARTBEAT_ATTR = "spd:heartbeat"
SURPLUS_ATTR = "spd:surplus"
ERROR_ATTR = "error"
RUN_DIR_ATTR = "run_dir"
"""A trial's run directory, relative to the sweep."""
CONSTRAINT_ATTR = "constraint"
"""Constraint value minus its bound: feasible when <= 0 (Optuna's convention)."""

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    def __init__(
        self, path: str, heartbeat_interval: int, grace_period: int, on_stale: StaleCallback
    ) -> None:
        super().__init__(JournalFileBackend(path))
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._on_stale = on_stale

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start or dt.datetime.now()
            last_beat = trial.system_attrs.get(HEARTBEAT_ATTR, started.timestamp())
            if now - last_beat > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self._on_stale


def open_storage(
    sweep: SweepDir,
    url: str | None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = GRACE_PERIOD_S,
) -> BaseStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
    if url is None:
        sweep.path.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournalStorage(
            str(sweep.study_journal), heartbeat_interval, grace_period, retry
        )
    return RDBStorage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        failed_trial_callback=retry,
    )


def storage_display(sweep: SweepDir, url: str | None) -> str:
    """What optuna-dashboard opens: the journal file, or the RDB URL."""
    return url or str(sweep.study_journal)


def build_sampler(search: SearchFile, stream: int = 0) -> optuna.samplers.BaseSampler:
    """The search's sampler, its seed shifted by `stream`: agents that share a study must not
    replay one another's random draws (see OptunaAgent.sampler_stream)."""
    seed = None if search.sampler.seed is None else search.sampler.seed + stream
    constraints = constraints_of if search.constraint is not None else None
    match search.sampler.name:
        case "tpe":
            return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)
        case "random":
            return optuna.samplers.RandomSampler(seed=seed)
        case "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        case "grid":
            grid = {key.label: space.grid() for key, space in search.space.items()}
            return optuna.samplers.GridSampler(grid, seed=seed)  # type: ignore[arg-type]
        case "nsgaii":
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints)


def build_pruner(search: SearchFile, max_steps: int) -> optuna.pruners.BasePruner:
    match search.pruner.name:
        case "none":
            return optuna.pruners.NopPruner()
        case "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=search.pruner.startup_trials,
                n_warmup_steps=search.pruner.warmup_steps,
            )
        case "hyperband":
            return optuna.pruners.HyperbandPruner(max_resource=max_steps)


def constraints_of(trial: FrozenTrial) -> tuple[float]:
    # A trial without the value (failed before its end) counts as infeasible.
    return (trial.user_attrs.get(CONSTRAINT_ATTR, float("inf")),)


def open_study(
    sweep: SweepDir, search: SearchFile, storage: BaseStorage, max_steps: int
) -> optuna.Study:
    study = optuna.create_study(
        storage=storage,
        study_name=sweep.sweep_id,
        sampler=build_sampler(search),
        pruner=build_pruner(search, max_steps),
        directions=search.directions,
        load_if_exists=True,
    )
    names = list(search.objectives)
    if study.metric_names != names:  # optuna-dashboard shows these instead of "Objective 0"
        with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def counted_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards n_trials: finished ones (complete, pruned, or failed for
    good) and those still running or waiting; not the failures that were retried, nor surplus."""
    retried = {n for t in trials for n in retry_history(t)}
    return [
        t
        for t in trials
        if not t.user_attrs.get(SURPLUS_ATTR)
        and not (t.state == TrialState.FAIL and t.number in retried)
    ]


def is_surplus(trials: list[FrozenTrial], number: int, n_trials: int) -> bool:
    """Whether trial `number` has no place among the study's n_trials.

    A trial's place is that of its first attempt: a retry takes the place of the trial it
    retries (which no longer counts once it failed), so a killed trial's retry is never surplus
    while a fresh trial asked by two agents at once past n_trials is. The places are counted over
    all trials, so a failed trial whose retry is numbered above `number` does not count twice."""
    trial = next(t for t in trials if t.number == number)
    place = first_attempt(trial)
    taken = [t for t in counted_trials(trials) if t.number != number and first_attempt(t) < place]
    return len(taken) >= n_trials


def retry_history(trial: FrozenTrial) -> list[int]:
    """The numbers of the trials that `trial` retries, the first attempt first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retry_history(trial)


def first_attempt(trial: FrozenTrial) -> int:
    """The number of the trial whose run directory a (retried) trial uses."""
    return (retry_history(trial) or [trial.number])[0]


def finished_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in counted_trials(trials) if t.state.is_finished()]
