"""An agent of a search: what each of the N SLURM array tasks (or local processes) runs.

It opens the shared study, and while fewer than `n_trials` trials count (orchestrator.search.study),
it asks for a trial, builds and validates its config, runs the decomposition into
`runs/trial-<n>/` and tells the study the objectives. Periodic evals report the (single)
objective to the pruner. A config that does not validate, or a run that raises, is a failed trial
with its error in the trial's user attribute `error`; the agent goes on with the next one. A trial
retried after its worker died runs in the first attempt's directory, so it resumes from its
checkpoint. When the study is done the agent returns the numbers of the trials it ran; its job's
result is how the orchestrator sees an agent completed (an agent has no run directory).
"""

import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import submitit
from optuna.trial import TrialState

from orchestrator.backends.job import log_to_job_output, set_torch_threads
from orchestrator.search.spec import SearchFile, trial_config
from orchestrator.search.study import (
    CONSTRAINT_ATTR,
    ERROR_ATTR,
    RUN_DIR_ATTR,
    SURPLUS_ATTR,
    build_sampler,
    counted_trials,
    first_attempt,
    is_surplus,
    open_storage,
    open_study,
)
from orchestrator.state.run_tags import run_tags
from orchestrator.state.sweep_dir import SweepDir
from spd.config_loading import ConfigError
from spd.evaluate import Evaluation
from spd.run import run_decomposition

logger = logging.getLogger(__name__)

TRIAL_DIR_PREFIX = "trial-"
WORKER_ATTR = "worker"
"""host:pid of the process that runs a trial (to find it, e.g. to see why it hangs)."""
MAX_WAIT_POLL_S = 2.0
"""How often an agent with nothing left to ask for looks whether the others' trials ended."""
CATCH = (Exception,)
"""A trial whose run raises is failed, and the agent goes on."""


def trial_dir_name(trial_number: int) -> str:
    return f"{TRIAL_DIR_PREFIX}{trial_number}"

AGENT_PREFIX = "agent-"
"""Agents are the jobs `agent-<index>` of a search's manifest."""


class OptunaAgent(submitit.helpers.Checkpointable):
    def __init__(
        self,
        sweep_path: Path,
        agent_id: str,
        experiment: str,
        search: SearchFile,
        overrides: dict[str, Any],
        n_trials: int,
        storage_url: str | None,
        heartbeat: tuple[int, int] | None = None,
    ) -> None:
        self.sweep_path = Path(sweep_path)
        self.agent_id = agent_id
        self.experiment = experiment
        self.search = search
        self.overrides = overrides
        self.n_trials = n_trials
        self.storage_url = storage_url
        self.heartbeat = heartbeat
        """(interval, grace period) in seconds; None: the defaults. Tests make them short."""

    def __call__(self) -> list[int]:
        """Run trials until the study has its n_trials; returns the numbers of those it ran."""
        log_to_job_output()
        set_torch_threads()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep = SweepDir(self.sweep_path)
        storage = open_storage(sweep, self.storage_url, *(self.heartbeat or ()))
        max_steps = trial_config(self.experiment, self.search, {}, self.overrides).steps
        study = open_study(sweep, self.search, storage, max_steps)
        study.sampler = build_sampler(self.search, self.sampler_stream(study))
        ran: list[int] = []
        while True:
            fail_stale_trials(study)
            trials = counted_trials(study.get_trials(deepcopy=False))
            states = {t.state for t in trials}
            if len(trials) < self.n_trials or TrialState.WAITING in states:
                # n_trials=1: the count is checked again before the next trial.
                study.optimize(self.objective(study, sweep, ran), n_trials=1, catch=CATCH)
            elif TrialState.RUNNING in states:
                # Stay until the others' trials end: if their worker dies, one of us retries it.
                time.sleep(self.poll_interval_s(storage))
            else:
                break
        return ran

    def sampler_stream(self, study: optuna.Study) -> int:
        """Distinct for every agent process of a search: agents started together differ by
        their index, agents of a resumed search by the trials that already exist. The first
        agent of a new study keeps the file's seed, so a one-agent search is reproducible."""
        index = int(self.agent_id.removeprefix(AGENT_PREFIX))
        return index * 1_000_003 + len(study.get_trials(deepcopy=False))

    @staticmethod
    def poll_interval_s(storage: Any) -> float:
        return min(MAX_WAIT_POLL_S, float(storage.get_heartbeat_interval()))

    def objective(self, study: optuna.Study, sweep: SweepDir, ran: list[int]) -> Any:
        """The objective of one trial; appends the numbers of the trials it runs to `ran`."""

        def run_trial(trial: optuna.Trial) -> float | list[float]:
            if self.is_surplus(study, trial):
                trial.set_user_attr(SURPLUS_ATTR, True)
                raise optuna.TrialPruned("the study already has its n_trials")
            ran.append(trial.number)
            trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
            values = {
                key: space.suggest(trial, key.label) for key, space in self.search.space.items()
            }
            try:
                config = trial_config(self.experiment, self.search, values, self.overrides)
            except ConfigError as e:
                trial.set_user_attr(ERROR_ATTR, str(e))
                raise
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            run_dir = sweep.run_dir(trial_dir_name(first_attempt(frozen)))
            trial.set_user_attr(RUN_DIR_ATTR, sweep.relative(run_dir.path))
            # Where it logs (not what it computes): W&B finds the search's runs by these.
            config = config.model_copy(
                update={
                    "wandb_run_name": f"{self.experiment}-{run_dir.path.name}",
                    "wandb_tags": run_tags(sweep.sweep_id, self.experiment),
                }
            )
            logger.info("Trial %d of %s: %s", trial.number, sweep.sweep_id, trial.params)
            try:
                summary = run_decomposition(
                    config,
                    run_dir.path,
                    resume=True,
                    progress=False,
                    on_eval=self.pruning_hook(trial, config.steps),
                )
                return self.objective_values(trial, summary.metrics)
            except optuna.TrialPruned:
                raise
            except Exception as e:
                trial.set_user_attr(ERROR_ATTR, f"{type(e).__name__}: {e}")
                raise

        return run_trial

    def is_surplus(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Asked while another agent took the last place (see optuna_study.is_surplus)."""
        return is_surplus(study.get_trials(deepcopy=False), trial.number, self.n_trials)

    def pruning_hook(self, trial: optuna.Trial, steps: int) -> Any:
        if self.search.pruner.name == "none":
            return None
        metric = next(iter(self.search.objectives))

        def report(step: int, evaluation: Evaluation) -> None:
            if step >= steps or metric not in evaluation.metrics:
                return  # the final value is the trial's result, not an intermediate one
            trial.report(evaluation.metrics[metric], step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"{metric}={evaluation.metrics[metric]:.4g} at step {step}"
                )

        return report

    def objective_values(
        self, trial: optuna.Trial, metrics: dict[str, float]
    ) -> float | list[float]:
        missing = [m for m in self.search.objectives if m not in metrics]
        if self.search.constraint is not None and self.search.constraint.metric not in metrics:
            missing.append(self.search.constraint.metric)
        if missing:
            known = ", ".join(sorted(metrics))
            raise KeyError(
                f"metric(s) {', '.join(missing)} not in the run summary; it has: {known}"
            )
        if self.search.constraint is not None:
            excess = metrics[self.search.constraint.metric] - self.search.constraint.max
            trial.set_user_attr(CONSTRAINT_ATTR, excess)
        values = [metrics[m] for m in self.search.objectives]
        return values[0] if len(values) == 1 else values


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
