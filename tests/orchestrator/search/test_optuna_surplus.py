"""Which trials have a place among a study's n_trials: a killed trial's retry always has one
(its first attempt's), a fresh trial asked past n_trials has none."""

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from orchestrator.search.study import SURPLUS_ATTR, counted_trials, is_surplus

N_TRIALS = 2


def study_of(
    *trials: tuple[TrialState, list[int]], surplus: tuple[int, ...] = ()
) -> list[FrozenTrial]:
    """Trials 0, 1, ... in the given states, each retrying the trials in its list."""
    study = optuna.create_study()
    for number, (state, retries) in enumerate(trials):
        system_attrs = {"failed_trial": retries[0], "retry_history": retries} if retries else {}
        study.add_trial(
            create_trial(
                state=state,
                value=0.0 if state == TrialState.COMPLETE else None,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                system_attrs=system_attrs,
                user_attrs={SURPLUS_ATTR: True} if number in surplus else {},
            )
        )
    return study.get_trials()


def test_fresh_trial_past_n_trials_is_surplus() -> None:
    trials = study_of((TrialState.COMPLETE, []), (TrialState.RUNNING, []), (TrialState.RUNNING, []))
    assert not is_surplus(trials, 1, N_TRIALS)
    assert is_surplus(trials, 2, N_TRIALS)


def test_retry_numbered_past_n_trials_takes_its_killed_trials_place() -> None:
    # The late kill: 0 complete, 1 killed and failed, 2 its retry.
    trials = study_of((TrialState.COMPLETE, []), (TrialState.FAIL, []), (TrialState.RUNNING, [1]))
    assert not is_surplus(trials, 2, N_TRIALS)
    assert [t.number for t in counted_trials(trials)] == [0, 2]


def test_fresh_trial_asked_before_the_killed_one_went_stale_keeps_its_place() -> None:
    # 0 killed; 1 asked while 0 still looked alive; 0 then failed and retried as 2.
    trials = study_of((TrialState.FAIL, []), (TrialState.COMPLETE, []), (TrialState.RUNNING, [0]))
    assert not is_surplus(trials, 1, N_TRIALS)
    assert not is_surplus(trials, 2, N_TRIALS)


def test_a_retry_of_a_retry_keeps_the_first_attempts_place() -> None:
    trials = study_of(
        (TrialState.FAIL, []),
        (TrialState.COMPLETE, []),
        (TrialState.FAIL, [0]),
        (TrialState.RUNNING, [0, 2]),
        (TrialState.RUNNING, []),
    )
    assert not is_surplus(trials, 3, N_TRIALS)
    assert is_surplus(trials, 4, N_TRIALS), "0's place (held by 3) and 1 fill the study"


def test_surplus_and_retried_trials_do_not_take_places() -> None:
    trials = study_of(
        (TrialState.FAIL, []),
        (TrialState.PRUNED, []),
        (TrialState.RUNNING, [0]),
        (TrialState.RUNNING, []),
        surplus=(1,),
    )
    assert not is_surplus(trials, 3, N_TRIALS), "1 was surplus and 0 is held by its retry"
