"""One real local sweep shared by the report tests: two experiments (tms_5-2 with a per-pattern C
sweep, and tms_5-2-id with a job that fails), ~30-step runs logging to W&B offline, launched
through the CLI, which ends with the report."""

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import main
from orchestrator.state.sweep_dir import SweepDir
from tests.orchestrator.short_sweeps import FAILING_LR, SHORT_ID_TARGET, write_sweep_file

PROJECT = "spd-report-test"
SHORT_30_STEPS = {
    "compile_step": False,  # a compile would take longer than the run
    "steps": 30,
    "eval_freq": 15,
    "save_freq": 15,
    "log_freq": 5,
    "batch_size": 64,
    "n_eval_steps": 1,
    "image_freq": None,
    "task_config.target.train_steps": 300,
}


@dataclass(frozen=True)
class FinishedSweep:
    sweep: SweepDir
    output: str
    """What the sweep command printed."""


@pytest.fixture(scope="package")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedSweep]:
    root = tmp_path_factory.mktemp("report_sweep")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPD_RUNS_DIR", str(root / "runs"))
        patch.setenv("WANDB_MODE", "offline")
        patch.chdir(root)
        sweep_file = write_sweep_file(
            Path("report.yaml"),
            {
                "global": SHORT_30_STEPS,
                "tms_5-2": {"C": {"linear1": {"values": [5, 10]}}},
                "tms_5-2-id": SHORT_ID_TARGET | FAILING_LR,
            },
        )
        args = [
            "--sweep",
            str(sweep_file),
            "--local",
            "--cpu",
            "--n_agents",
            "2",
            "--poll-interval",
            "0.5",
            "--project",
            PROJECT,
            "--report_title",
            "Report test sweep",
        ]
        patch.setattr(sys, "argv", ["spd-sweep", *args])  # the sweep records its command line
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 1, result.output  # the job with the diverging lr failed
        (path,) = (root / "runs" / "sweeps").iterdir()
        yield FinishedSweep(SweepDir(path), result.output)


def summary_of(sweep: SweepDir, job_id: str) -> dict:
    return json.loads(sweep.run_dir(job_id).summary.read_text())
