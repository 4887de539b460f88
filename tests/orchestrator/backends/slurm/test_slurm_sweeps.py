"""spd-sweep against the real single-node SLURM cluster (scripts/slurm_cluster.sh).

Every test has its own sweep root (so its own submitit folder) and short jobs: a tms_5-2 job
takes ~10-20 s on a loaded 2-core machine, mostly imports.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from orchestrator.cli.main import main
from orchestrator.state.sweep_dir import JobRecord, JobState, SweepDir
from spd.config_loading import load_raw_config, set_dotted
from spd.registry import EXPERIMENTS
from tests.orchestrator.short_sweeps import (
    DIVERGED,
    FAILING_LR,
    SHORT_ID_TARGET,
    SHORT_RUN,
    write_sweep_file,
)
from tests.orchestrator.slurm_accounting import (
    max_concurrency,
    wait_for_final_states,
    wait_until_nothing_runs,
)

pytestmark = pytest.mark.slurm

SLURM_ARGS = ["--cpu", "--time", "10", "--poll-interval", "0.5", "--no-create_report"]
"""Reports are tested in tests/orchestrator/report; here they would only add time."""


@pytest.fixture
def sweeps(slurm_cluster: str, sweep_root: Path) -> Path:
    return sweep_root


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def spawn(*args: str) -> subprocess.Popen[str]:
    """The orchestrator as its own process (cwd and environment of the test)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )


def the_sweep(sweep_root: Path) -> SweepDir:
    (path,) = sweep_root.iterdir()
    return SweepDir(path)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout_s} s")
        time.sleep(0.2)


def array_of(sweep: SweepDir) -> str:
    (array,) = {r.slurm_job_id.split("_")[0] for r in sweep.read_manifest().jobs}
    return array


def test_evaluation_run_of_two_experiments(
    sweeps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An evaluation run runs each experiment's registry config: point the registry at short ones.
    for name, extra in [("tms_5-2", {}), ("tms_5-2-id", SHORT_ID_TARGET)]:
        config = load_raw_config(name)
        for key, value in (SHORT_RUN | extra).items():
            config = set_dotted(config, key, value)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        monkeypatch.setitem(
            EXPERIMENTS, name, dataclasses.replace(EXPERIMENTS[name], config_path=path)
        )

    result = run("--experiments", "tms_5-2,tms_5-2-id", *SLURM_ARGS)

    assert result.exit_code == 0, result.output
    sweep = the_sweep(sweeps)
    assert sweep.read_meta().kind == "evaluation"
    manifest = sweep.read_manifest()
    assert [(r.experiment, r.state) for r in manifest.jobs] == [
        ("tms_5-2", JobState.COMPLETED),
        ("tms_5-2-id", JobState.COMPLETED),
    ]
    array = array_of(sweep)
    assert [r.slurm_job_id for r in manifest.jobs] == [f"{array}_0", f"{array}_1"]
    id_summary = json.loads(sweep.run_dir(manifest.jobs[1].job_id).summary.read_text())
    assert list(id_summary["modules"]) == ["linear1", "hidden_layers.0", "linear2"]
    for record in manifest.jobs:
        assert f"{record.name}: alive components: linear1 " in result.output
        assert f"    {sweep.run_dir(record.job_id).summary}  (figures: " in result.output
        # The job ran the code snapshot taken at submission, not the checkout.
        assert f"code from {sweep.code / 'spd'}" in (sweep.path / record.log_path).read_text()
    assert [t.state for t in wait_for_final_states(array, 2)] == ["COMPLETED", "COMPLETED"]


def test_per_pattern_c_sweep_runs_at_most_n_agents_at_once(sweeps: Path) -> None:
    sweep_file = write_sweep_file(
        Path("pattern_c.yaml"),
        {
            "global": SHORT_RUN,
            "tms_5-2": {"C": {"linear1": {"values": [5, 20]}, "linear2": {"values": [10, 20]}}},
        },
    )

    result = run("--sweep", str(sweep_file), "--n_agents", "2", *SLURM_ARGS)

    assert result.exit_code == 0, result.output
    sweep = the_sweep(sweeps)
    manifest = sweep.read_manifest()
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED] * 4
    for record in manifest.jobs:
        modules = json.loads(sweep.run_dir(record.job_id).summary.read_text())["modules"]
        assert {path: m["C"] for path, m in modules.items()} == {
            "linear1": record.params["C[linear1]"],
            "linear2": record.params["C[linear2]"],
        }
    assert "#SBATCH --array=0-3%2" in (sweep.scripts / "array_000.sbatch").read_text()
    tasks = wait_for_final_states(array_of(sweep), 4)
    assert all(t.state == "COMPLETED" for t in tasks)
    assert max_concurrency(tasks) <= 2, tasks


def test_failed_job_is_reported_with_its_log_while_the_others_finish(sweeps: Path) -> None:
    sweep_file = write_sweep_file(
        Path("fail.yaml"),
        {
            # The good job is longer, so it is still running when the bad one fails.
            "global": SHORT_RUN | {"steps": 400},
            "tms_5-2": FAILING_LR,
        },
    )
    orchestrator = spawn("--sweep", str(sweep_file), *SLURM_ARGS)
    assert orchestrator.stdout is not None
    lines = []
    for line in orchestrator.stdout:
        lines.append(line)
        if line.startswith("FAILED"):
            break
    sweep = the_sweep(sweeps)
    good, bad = sweep.read_manifest().jobs
    # Reported while the other job was still going:
    assert not sweep.run_dir(good.job_id).is_complete()
    assert lines[-1] == f"FAILED {bad.name} [{bad.job_id}]: {bad.error}\n"
    assert bad.error.startswith(DIVERGED)
    log_line = orchestrator.stdout.readline()
    assert log_line == f"    log: {sweep.path / bad.log_path}\n"
    assert DIVERGED in (sweep.path / bad.log_path).read_text()

    assert orchestrator.wait(timeout=180) == 1  # exit 1: a job failed
    good, bad = sweep.read_manifest().jobs
    assert (good.state, bad.state) == (JobState.COMPLETED, JobState.FAILED)
    assert [t.state for t in wait_for_final_states(array_of(sweep), 2)] == ["COMPLETED", "FAILED"]


def test_killed_orchestrator_resumes_and_submits_only_missing_jobs(sweeps: Path) -> None:
    sweep_file = write_sweep_file(
        Path("seeds.yaml"), {"global": SHORT_RUN, "tms_5-2": {"seed": {"values": [0, 1, 2, 3]}}}
    )
    command = ["--sweep", str(sweep_file), "--n_agents", "2", *SLURM_ARGS]
    orchestrator = spawn(*command)
    wait_until(
        lambda: sweeps.exists() and any(sweeps.glob("*/runs/*/summary.json")),
        180,
        "a first job finishing",
    )
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.wait(timeout=30)
    sweep = the_sweep(sweeps)
    array = array_of(sweep)

    # Its jobs live on: re-running the command submits nothing.
    alive = run(*command, "--no-wait")
    assert "Submitting 0 of 4 jobs" in alive.output, alive.output

    # Now they die too (the whole array, queued tasks included); re-running submits the rest.
    subprocess.run(["scancel", array], check=True, timeout=30)
    wait_until_nothing_runs(array)
    resumed = run(*command)

    assert resumed.exit_code == 0, resumed.output
    manifest = sweep.read_manifest()
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED] * 4
    # Jobs done before are not run again; the others ran again, in a new array. (Which ones were
    # done is only known now: a cancelled task may still finish during SLURM's KillWait.)
    resubmitted = [r for r in manifest.jobs if r.attempts == 2]
    kept = [r for r in manifest.jobs if r.attempts == 1]
    assert len(resubmitted) >= 2  # two were still queued when the array was cancelled
    assert f"Submitting {len(resubmitted)} of 4 jobs" in resumed.output
    assert all(r.slurm_job_id.startswith(f"{array}_") for r in kept)
    assert not any(r.slurm_job_id.startswith(f"{array}_") for r in resubmitted)


def assert_resumed_once(sweep: SweepDir, record: JobRecord, steps: int, log_freq: int) -> None:
    """The job was interrupted once and finished in the same SLURM task, resumed from its
    checkpoint, with every training step logged exactly once across the interruption."""
    run_dir = sweep.run_dir(record.job_id)
    assert (record.state, record.attempts) == (JobState.COMPLETED, 1)
    run_log = run_dir.log.read_text()
    assert f"Resuming {run_dir.path} from step" in run_log, run_log
    records = [json.loads(line) for line in run_dir.metrics.read_text().splitlines()]
    assert [r["step"] for r in records if "loss/total" in r] == list(range(0, steps, log_freq))
    job_log = (sweep.path / record.log_path).read_text()
    assert job_log.count("Starting with JobEnvironment") == 2, job_log  # a start, a restart


@pytest.mark.usefixtures("requeue_meets_the_stop")
def test_requeued_jobs_resume_from_their_checkpoint(sweeps: Path) -> None:
    # Long enough (seconds) that a job cannot finish between its first checkpoint and the signal.
    steps, log_freq = 3000, 50
    sweep_file = write_sweep_file(
        Path("long.yaml"),
        {
            "global": SHORT_RUN
            | {"steps": steps, "eval_freq": steps, "save_freq": 50, "log_freq": log_freq},
            "tms_5-2": {"seed": {"values": [0, 1]}},
        },
    )
    submitted = run("--sweep", str(sweep_file), *SLURM_ARGS, "--no-wait")
    assert submitted.exit_code == 0, submitted.output
    sweep = the_sweep(sweeps)
    by_signal, by_requeue = sweep.read_manifest().jobs
    interruptions = {
        # Time limit or preemption as submitit sees it: USR2; it checkpoints and requeues itself
        # (and SLURM stops it before its scontrol returns: that requeue did not fail).
        by_signal.job_id: ["scancel", "--batch", "--signal=USR2", by_signal.slurm_job_id],
        # Requeued from outside (e.g. preemption with requeue): the task is killed and restarts.
        by_requeue.job_id: ["scontrol", "requeue", by_requeue.slurm_job_id],
    }

    def interrupt_each_once_it_has_a_checkpoint() -> bool:
        for job_id in [j for j in interruptions if sweep.run_dir(j).checkpoint.exists()]:
            assert not sweep.run_dir(job_id).is_complete(), "finished before it was interrupted"
            subprocess.run(interruptions.pop(job_id), check=True, timeout=30)
        return not interruptions

    wait_until(interrupt_each_once_it_has_a_checkpoint, 180, "both jobs writing a checkpoint")

    finished = run("resume", sweep.sweep_id, "--poll-interval", "0.5", "--no-create_report")

    assert "Submitting 0 of 2 jobs" in finished.output
    assert finished.exit_code == 0, finished.output
    for record in sweep.read_manifest().jobs:
        assert_resumed_once(sweep, record, steps, log_freq)
    assert (
        "SLURM stopped scontrol with the job it requeues"
        in (sweep.path / by_signal.log_path).read_text()
    )


def test_dry_run_scripts_pass_sbatch_test_only_and_nothing_is_submitted(sweeps: Path) -> None:
    hostile = "x; rm -rf ~ $(id) 'q' \"dq\""
    result = run(
        "--experiments",
        "tms_5-2",
        "--dry-run",
        "--cpu",
        "--partition",
        "debug",
        "--time",
        "5",
        "--job_suffix",
        hostile,
        "--sbatch",
        f"comment={hostile}",
    )
    assert result.exit_code == 0, result.output
    sweep = the_sweep(sweeps)
    (script,) = sweep.scripts.glob("*.sbatch")
    test_only = subprocess.run(
        ["sbatch", "--test-only", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert test_only.returncode == 0, test_only.stderr
    assert "to start at" in test_only.stderr
    assert not sweep.logs.exists()  # no job pickles: nothing was submitted
    queued = subprocess.run(
        ["squeue", "-h", "-o", "%j"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "spd-eval" not in queued

    # What sbatch reads from the directives is exactly what was given.
    held = (
        subprocess.run(
            ["sbatch", "--hold", "--parsable", str(script)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        .stdout.strip()
        .split(";")[0]
    )
    try:
        shown = subprocess.run(
            ["scontrol", "show", "job", held],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    finally:
        subprocess.run(["scancel", held], timeout=30, check=False)
    assert f"JobName=spd-eval-{hostile}\n" in shown
    assert f"Comment={hostile} " in shown
