"""Agents run real (short) tms_5-2 trials in this process: pruning, retries, the Pareto front."""

import time
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from orchestrator.search.agent import OptunaAgent
from orchestrator.search.results import best_trials, dominates, status_text, write_best_configs
from orchestrator.search.spec import SearchFile
from orchestrator.search.study import (
    ERROR_ATTR,
    HEARTBEAT_ATTR,
    RUN_DIR_ATTR,
    counted_trials,
    open_storage,
    open_study,
    retry_history,
)
from orchestrator.state.sweep_dir import SweepDir
from spd.config_loading import validate_config
from spd.progress import Progress
from tests.orchestrator.search.searches import CPU, SHORT_TRIAL, c_search, search_file

HEARTBEAT = (1, 2)
"""(interval, grace period) in seconds: a dead worker's trial is found stale within seconds."""


def agent(sweep: SweepDir, search: SearchFile, n_trials: int) -> OptunaAgent:
    return OptunaAgent(sweep.path, "agent-0", "tms_5-2", search, CPU, n_trials, None, HEARTBEAT)


def study_for(sweep: SweepDir, search: SearchFile) -> optuna.Study:
    return open_study(sweep, search, open_storage(sweep, None, *HEARTBEAT), SHORT_TRIAL["steps"])


def test_pareto_front_members_are_not_dominated() -> None:
    search = search_file(c_search())
    study = optuna.create_study(directions=search.directions)
    points = [(0.1, 10), (0.2, 8), (0.3, 8), (0.05, 20), (0.2, 12), (0.1, 10)]
    for recon, total_c in points:
        study.add_trial(
            create_trial(
                values=[recon, total_c],
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
            )
        )
    front = best_trials(study.trials, search)
    assert sorted(tuple(t.values) for t in front) == [(0.05, 20), (0.1, 10), (0.1, 10), (0.2, 8)]
    assert not dominates([0.1, 10], [0.1, 10], [1.0, 1.0])


def test_multi_objective_search_gives_a_pareto_front_with_ready_configs(
    tmp_path: Path,
) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    search = search_file(c_search())
    assert agent(sweep, search, n_trials=3)() == [0, 1, 2]  # the trials it ran
    study = study_for(sweep, search)
    trials = counted_trials(study.get_trials())
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    front = best_trials(study.get_trials(), search)
    assert front
    for member in front:
        assert not any(dominates(t.values, member.values, [1.0, 1.0]) for t in trials)
        assert member.values[1] == 2 * member.params["C"]
    written = write_best_configs(sweep, front)
    assert {p.name for p in written} == {f"trial-{t.number}.yaml" for t in front}
    config = validate_config(yaml.safe_load(written[0].read_text()))
    assert config.steps == SHORT_TRIAL["steps"]
    assert "Pareto front" in status_text(sweep, study, search, 3)
    assert not sweep.run_dir("agent-0").path.exists()  # an agent writes no run of its own


def test_pruner_prunes_a_clearly_worse_trial(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    search = search_file(
        c_search(
            search={"lr": {"choices": [0.003, 30.0]}},
            objectives={"loss/stochastic_recon": "minimize"},
            sampler={"name": "tpe", "seed": 0},
            pruner={"name": "median", "startup_trials": 1, "warmup_steps": 1},
        )
    )
    study = study_for(sweep, search)
    study.enqueue_trial({"lr": 0.003})
    study.enqueue_trial({"lr": 30.0})
    agent(sweep, search, n_trials=2)()
    good, bad = study_for(sweep, search).get_trials()
    assert good.state == TrialState.COMPLETE
    assert bad.state == TrialState.PRUNED
    assert max(bad.intermediate_values) < SHORT_TRIAL["steps"]
    status = status_text(sweep, study_for(sweep, search), search, 2)
    assert f"(pruned at step {bad.last_step})" in status


def test_status_shows_the_step_a_running_trial_is_at(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    search = search_file(c_search())
    study = study_for(sweep, search)
    running = study.ask({"C": optuna.distributions.IntDistribution(2, 12)})
    running.set_user_attr(RUN_DIR_ATTR, "runs/trial-0")
    Progress(
        step=1200, steps=5000, loss=0.5, steps_per_s=10.0, eta_s=380.0, updated=datetime.now(UTC)
    ).write(sweep.run_dir("trial-0").progress)
    assert "(step 1200/5000)" in status_text(sweep, study, search, 2)


def test_invalid_combination_is_a_failed_trial_with_its_reason(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    search = search_file(
        c_search(search={"eval_freq": {"choices": [10, 7]}}, sampler={"name": "grid"})
    )  # image_freq 10 is no multiple of eval_freq 7
    study = study_for(sweep, search)
    study.enqueue_trial({"eval_freq": 7})
    agent(sweep, search.model_copy(update={"fixed": SHORT_TRIAL | {"image_freq": 10}}), 1)()
    (trial,) = study_for(sweep, search).get_trials()
    assert trial.state == TrialState.FAIL
    assert "must be a multiple of eval_freq" in trial.user_attrs[ERROR_ATTR]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the dead worker's ask
def test_trial_of_a_dead_worker_is_retried_in_its_run_directory(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    search = search_file(c_search())
    study = study_for(sweep, search)
    # A worker that asked for trial 0, beat once, and died.
    dead = study.ask({"C": optuna.distributions.IntDistribution(2, 12)})
    study._storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 60)
    agent(sweep, search, n_trials=2)()
    trials = study_for(sweep, search).get_trials()
    assert trials[0].state == TrialState.FAIL
    retried = [t for t in trials if retry_history(t) == [0]]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params["C"] == dead.params["C"]
    assert retried[0].user_attrs["run_dir"] == "runs/trial-0"
    assert [t.state for t in counted_trials(trials)] == [TrialState.COMPLETE] * 2


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
