"""A local agent killed mid-trial: launching the search again retries its trial from its
checkpoint, and the study ends with exactly n_trials counted trials, none of them surplus.

The agent is parked at a known evaluation (pause_hook) and killed there, so no test depends on
how fast training runs. Whether the relaunched agent finds the killed trial already stale or
still beating depends, in real life, on how soon it starts; each order is forced explicitly.
"""

import functools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from orchestrator.backends.local import LocalBackend
from orchestrator.search.agent import WORKER_ATTR, fail_stale_trials
from orchestrator.search.launch import SearchSpec, launch_search, write_search_sweep
from orchestrator.search.spec import trial_config
from orchestrator.search.study import (
    HeartbeatJournalStorage,
    counted_trials,
    open_storage,
    open_study,
    retry_history,
)
from orchestrator.state.sweep_dir import JobState, LaunchSettings, SweepDir
from tests.orchestrator.search.pause_hook import HOOK, PAUSE_DIR_ENV, evaluations_per_trial
from tests.orchestrator.search.searches import CPU, SHORT_TRIAL, c_search, search_file, write_search

HEARTBEAT = (1, 3)
"""(interval, grace period) in seconds: a killed trial is stale 3 s after its last beat."""
N_TRIALS = 2
TIMEOUT_S = 120
SETTINGS = LaunchSettings(backend="local", n_agents=1, template="job_array", job_name="t")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def pause_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hook's directory; the agents import the hook from this checkout."""
    path = tmp_path / "pause"
    path.mkdir()
    monkeypatch.setenv(PAUSE_DIR_ENV, str(path))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    return path


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Search:
    """One search of N_TRIALS short tms_5-2 trials, launched with one local agent at a time."""

    def __init__(self, tmp_path: Path) -> None:
        fixed = SHORT_TRIAL | {"steps": 40, "user_metrics": [HOOK]}
        data = c_search(fixed=fixed)
        self.path = write_search(tmp_path / "search.yaml", data)
        self.spec = SearchSpec(
            experiment="tms_5-2", search=search_file(data), overrides=CPU, n_trials=N_TRIALS
        )
        self.evals_per_trial = evaluations_per_trial(fixed["steps"], fixed["eval_freq"])
        self.sweep: SweepDir | None = None

    def launch(self, wait: bool):  # -> Manifest
        sweep, manifest = write_search_sweep(self.spec, self.path, "search", None, 1, ["test"])
        self.sweep = sweep
        return launch_search(
            sweep,
            manifest,
            LocalBackend(1, threads_per_job=1),
            SETTINGS,
            dry_run=False,
            wait=wait,
            poll_interval_s=0.2,
            echo=print,
            heartbeat=HEARTBEAT,
        )

    @property
    def storage(self) -> HeartbeatJournalStorage:
        storage = open_storage(self.sweep, None, *HEARTBEAT)
        assert isinstance(storage, HeartbeatJournalStorage)
        return storage

    @functools.cached_property
    def study(self) -> optuna.Study:
        """The study as the test process sees it (opened once, after the first launch)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        steps = trial_config(self.spec.experiment, self.spec.search, {}, self.spec.overrides).steps
        return open_study(self.sweep, self.spec.search, self.storage, steps)

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials()


def kill_agent_in_trial(search: Search, pause_dir: Path, trial_index: int) -> FrozenTrial:
    """Launch one agent, park it at the first periodic evaluation after the first checkpoint of
    its `trial_index`-th trial, kill it there and reap it. Returns the killed (running) trial."""
    (pause_dir / "pause").write_text(str(search.evals_per_trial * trial_index + 2))
    manifest = search.launch(wait=False)
    wait_for(lambda: (pause_dir / "paused").exists(), "the agent to pause")
    (pause_dir / "pause").unlink()
    killed = search.trials()[trial_index]
    assert killed.state == TrialState.RUNNING
    assert (search.sweep.run_dir(f"trial-{killed.number}").path / "checkpoint.pt").exists()
    # The agent runs under submitit's local controller (our child): kill the agent, reap both.
    worker = int(killed.user_attrs[WORKER_ATTR].rpartition(":")[2])
    assert worker == int((pause_dir / "paused").read_text())
    os.kill(worker, signal.SIGKILL)
    controller = int(manifest.jobs[0].local_job_id)
    wait_for(lambda: os.waitpid(controller, os.WNOHANG) != (0, 0), "submitit's controller to end")
    return killed


def fail_stale(search: Search, killed: FrozenTrial) -> None:
    """Wait until the killed trial's heartbeat is stale and fail it (which enqueues its retry)."""
    study = search.study

    def failed() -> bool:
        fail_stale_trials(study)
        return study.get_trials()[killed.number].state == TrialState.FAIL

    wait_for(failed, "the killed trial to go stale")


@pytest.fixture
def beating() -> Iterator[list[threading.Event]]:
    """Stops every heartbeat thread a test started, even when the test fails."""
    stops: list[threading.Event] = []
    yield stops
    for stop in stops:
        stop.set()


def keep_beating_until_a_fresh_trial(
    search: Search, killed: FrozenTrial, stops: list[threading.Event]
) -> threading.Thread:
    """Beat for the killed trial (as a worker that is not yet seen dead) until the relaunched
    agent has asked for a trial of its own."""
    stop = threading.Event()
    stops.append(stop)
    storage = search.storage

    def beat() -> None:
        while not stop.is_set() and len(search.trials()) <= killed.number + 1:
            storage.record_heartbeat(killed._trial_id)
            stop.wait(HEARTBEAT[0] / 4)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    return thread


def assert_retried_from_checkpoint(search: Search, killed: FrozenTrial, manifest) -> None:
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED]
    assert manifest.jobs[0].attempts == 2
    trials = search.trials()
    assert len(trials) == N_TRIALS + 1, "one trial more than n_trials: the killed one"
    assert trials[killed.number].state == TrialState.FAIL
    assert not [t.number for t in trials if t.state == TrialState.PRUNED], "a trial was surplus"
    (retry,) = [t for t in trials if retry_history(t) == [killed.number]]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    run_dir = search.sweep.run_dir(f"trial-{killed.number}")
    assert retry.user_attrs["run_dir"] == f"runs/trial-{killed.number}"
    assert "Resuming" in run_dir.log.read_text(), "the retry did not resume the checkpoint"
    counted = counted_trials(trials)
    assert len(counted) == N_TRIALS and all(t.state == TrialState.COMPLETE for t in counted)


def test_killed_trial_already_stale_when_the_search_is_launched_again(
    sweep_root: Path, tmp_path: Path, pause_dir: Path
) -> None:
    search = Search(tmp_path)
    killed = kill_agent_in_trial(search, pause_dir, trial_index=0)
    fail_stale(search, killed)  # the retry waits in the queue before the agent starts
    manifest = search.launch(wait=True)
    assert_retried_from_checkpoint(search, killed, manifest)
    assert retry_history(search.trials()[1]) == [0], "the queued retry ran first"


def test_killed_trial_still_beating_when_the_search_is_launched_again(
    sweep_root: Path, tmp_path: Path, pause_dir: Path, beating: list[threading.Event]
) -> None:
    search = Search(tmp_path)
    killed = kill_agent_in_trial(search, pause_dir, trial_index=0)
    beat = keep_beating_until_a_fresh_trial(search, killed, beating)
    manifest = search.launch(wait=True)
    beat.join(timeout=TIMEOUT_S)
    trials = search.trials()
    assert retry_history(trials[1]) == [], "trial 1 is a fresh trial, asked while 0 still beat"
    assert retry_history(trials[2]) == [0]
    assert_retried_from_checkpoint(search, killed, manifest)


def test_trial_killed_when_the_study_holds_n_trials_is_retried(
    sweep_root: Path, tmp_path: Path, pause_dir: Path
) -> None:
    """The late kill: the study already holds all n_trials trials when the last one dies, so
    its retry is numbered past n_trials and must still take the killed trial's place."""
    search = Search(tmp_path)
    killed = kill_agent_in_trial(search, pause_dir, trial_index=N_TRIALS - 1)
    assert search.trials()[0].state == TrialState.COMPLETE
    manifest = search.launch(wait=True)
    assert_retried_from_checkpoint(search, killed, manifest)
