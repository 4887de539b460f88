"""A local agent killed mid-trial: re-launching the search retries its trial; nothing is lost."""

import os
import signal
import time
from pathlib import Path

from optuna.trial import TrialState

from orchestrator.local_backend import LocalBackend
from orchestrator.optuna_launch import SearchSpec, launch_search, study_of, write_search_sweep
from orchestrator.optuna_study import counted_trials, retry_history
from orchestrator.optuna_worker import WORKER_ATTR
from orchestrator.sweep_dir import JobState, LaunchSettings
from tests.orchestrator.optuna.searches import CPU, c_search, search_file, write_search

HEARTBEAT = (1, 3)
SETTINGS = LaunchSettings(backend="local", n_agents=1, template="job_array", job_name="t")


def launch(spec: SearchSpec, path: Path, wait: bool):  # -> (sweep, manifest)
    sweep, manifest = write_search_sweep(spec, path, "search", None, 1, ["test"])
    manifest = launch_search(
        sweep,
        manifest,
        LocalBackend(1, threads_per_job=1),
        SETTINGS,
        dry_run=False,
        wait=wait,
        poll_interval_s=0.5,
        echo=print,
        heartbeat=HEARTBEAT,
    )
    return sweep, manifest


def test_killed_agents_trial_is_retried_when_the_search_is_launched_again(
    sweep_root: Path, tmp_path: Path
) -> None:
    data = c_search(fixed=c_search()["fixed"] | {"steps": 60})
    path = write_search(tmp_path / "search.yaml", data)
    spec = SearchSpec(experiment="tms_5-2", search=search_file(data), overrides=CPU, n_trials=2)
    sweep, manifest = launch(spec, path, wait=False)
    study = study_of(sweep, spec)

    deadline = time.monotonic() + 120
    while not (sweep.run_dir("trial-0").path / "checkpoint.pt").exists():
        assert time.monotonic() < deadline, "trial 0 never wrote a checkpoint"
        time.sleep(0.2)
    running = study.get_trials()[0]
    assert running.state == TrialState.RUNNING
    # The agent runs under submitit's local controller (our child): kill the agent, reap both.
    os.kill(int(running.user_attrs[WORKER_ATTR].rpartition(":")[2]), signal.SIGKILL)
    controller = int(manifest.jobs[0].local_job_id)
    while os.waitpid(controller, os.WNOHANG) == (0, 0):
        assert time.monotonic() < deadline, "submitit's controller did not end"
        time.sleep(0.2)

    sweep, manifest = launch(spec, path, wait=True)
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED]
    assert manifest.jobs[0].attempts == 2
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    (retry,) = [t for t in trials if retry_history(t) == [0]]
    assert retry.state == TrialState.COMPLETE and retry.params == trials[0].params
    assert retry.user_attrs["run_dir"] == "runs/trial-0"
    counted = counted_trials(trials)
    assert len(counted) == 2 and all(t.state == TrialState.COMPLETE for t in counted)
