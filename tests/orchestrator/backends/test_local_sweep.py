"""A local sweep end to end: real jobs through submitit's local executor, the same job function
and manifest as on SLURM."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli.main import main
from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.short_sweeps import DIVERGED, FAILING_LR, SHORT_RUN, write_sweep_file


def run(*args: str) -> Result:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["spd-sweep", *args])  # the sweep records its command line
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_local_sweep_runs_reports_failures_and_reruns_only_what_is_missing(
    sweep_root: Path,
) -> None:
    sweep_file = write_sweep_file(
        Path("local.yaml"),
        {"global": SHORT_RUN, "tms_5-2": FAILING_LR},
    )
    command = [
        "--sweep",
        str(sweep_file),
        "--local",
        "--cpu",
        "--n_agents",
        "2",
        "--poll-interval",
        "0.5",
        "--no-create_report",
    ]

    first = run(*command)

    assert first.exit_code == 1, first.output  # a job failed
    (path,) = sweep_root.iterdir()
    sweep = SweepDir(path)
    good, bad = sweep.read_manifest().jobs
    assert (good.state, good.attempts, good.backend) == (JobState.COMPLETED, 1, "local")
    summary = json.loads(sweep.run_dir(good.job_id).summary.read_text())
    assert summary["status"] == "completed" and summary["steps"] == 50
    assert summary["modules"]["linear1"]["C"] == 20
    assert bad.state == JobState.FAILED
    assert bad.error.startswith(DIVERGED)
    bad_log = sweep.path / bad.log_path
    assert f"FAILED {bad.name} [{bad.job_id}]: {bad.error}\n    log: {bad_log}" in first.output
    assert "Traceback" in bad_log.read_text()
    good_log = (sweep.path / good.log_path).read_text()
    assert f"code from {sweep.code / 'spd'}" in good_log  # the snapshot, not the checkout
    # What the run found (alive components against C; the distance from the known solution),
    # then where its summary is.
    alive = summary["modules"]["linear1"]["alive"]
    error = summary["metrics"]["target_ci_error/total"]
    assert f"{good.name}: alive components: linear1 {alive:g} of 20, " in first.output
    assert f"target-CI error {error:g}" in first.output
    assert f"    {sweep.run_dir(good.job_id).summary}  (figures: " in first.output
    summary_mtime = sweep.run_dir(good.job_id).summary.stat().st_mtime_ns

    again = run(*command)

    assert again.exit_code == 1
    assert (
        "Submitting 0 of 2 jobs (1 completed, 1 failed). Failed jobs are not resubmitted "
        "without --retry-failed." in again.output
    )

    retried = run(
        "resume", sweep.sweep_id, "--retry-failed", "--poll-interval", "0.5", "--no-create_report"
    )

    assert "Submitting 1 of 2 jobs (1 completed, 1 failed)." in retried.output
    good, bad = sweep.read_manifest().jobs
    assert (bad.state, bad.attempts) == (JobState.FAILED, 2)
    assert bad.log_path.startswith(f"logs/{bad.job_id}.2/")  # each attempt has its own folder
    assert (good.attempts, sweep.run_dir(good.job_id).summary.stat().st_mtime_ns) == (
        1,
        summary_mtime,
    )
    assert sweep.read_meta().launch.backend == "local"
    # Each command that submitted is in the history (a dry run would not be); the report shows
    # the last one.
    resume = ["resume", sweep.sweep_id, "--retry-failed", "--poll-interval", "0.5",
              "--no-create_report"]  # fmt: skip
    meta = sweep.read_meta()
    assert [launch.command for launch in meta.launches] == [
        ["spd-sweep", *command], ["spd-sweep", *command], ["spd-sweep", *resume]
    ]  # fmt: skip
    assert meta.last_command == ["spd-sweep", *resume]
