"""Data-parallel jobs on the real localhost SLURM cluster (scripts/slurm_cluster.sh): each job of
a sweep is one decomposition in 2 processes (srun -> torchrun -> 2 ranks of the array task's
runner), and finds what the same config finds in one process.
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.state.sweep_dir import JobRecord, JobState, SweepDir
from spd.config_loading import validate_config
from spd.run import run_decomposition
from tests.orchestrator.backends.slurm.test_slurm_sweeps import (
    SLURM_ARGS,
    array_of,
    assert_resumed_once,
    run,
    the_sweep,
    wait_until,
)
from tests.orchestrator.short_sweeps import SHORT_RUN, write_sweep_file
from tests.orchestrator.slurm_accounting import wait_for_final_states

pytestmark = pytest.mark.slurm

DATA_PARALLEL_RUN = SHORT_RUN | {"steps": 20, "eval_freq": 20, "save_freq": 10, "log_freq": 10}
"""20 steps of a tms_5-2 decomposition, global batch 64 (32 rows per rank)."""


@pytest.fixture
def sweeps(slurm_cluster: str, sweep_root: Path) -> Path:
    return sweep_root


def module_summaries(summary: Path) -> dict[str, float]:
    """'<module>.<field>' -> value of summary.json's modules (the pattern aside)."""
    modules = json.loads(summary.read_text())["modules"]
    return {
        f"{path}.{key}": value
        for path, module in modules.items()
        for key, value in module.items()
        if key != "pattern"
    }


def cluster_nodes() -> int:
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return len(set(out.split()))


def check_equal_to_single_process(sweep: SweepDir, record: JobRecord, tmp_path: Path) -> None:
    """The job's summary.json modules are those of its config run in one process, here."""
    config = validate_config(yaml.safe_load(sweep.config_path(record.job_id).read_text()))
    single = tmp_path / "single" / record.job_id
    run_decomposition(config, single, resume=False, progress=False)
    assert module_summaries(sweep.run_dir(record.job_id).summary) == pytest.approx(
        module_summaries(single / "summary.json"), rel=1e-5
    )


def test_sweep_of_two_jobs_each_in_two_processes_equals_single_process_runs(
    sweeps: Path, tmp_path: Path
) -> None:
    sweep_file = write_sweep_file(
        Path("dp.yaml"), {"global": DATA_PARALLEL_RUN, "tms_5-2": {"seed": {"values": [0, 1]}}}
    )

    result = run(
        "--sweep", str(sweep_file), "--nproc-per-node", "2", "--cpus-per-task", "2", *SLURM_ARGS
    )

    assert result.exit_code == 0, result.output
    sweep = the_sweep(sweeps)
    manifest = sweep.read_manifest()
    assert [r.state for r in manifest.jobs] == [JobState.COMPLETED] * 2
    resources = sweep.read_meta().launch.resources  # type: ignore[union-attr]
    assert (resources.nodes, resources.nproc_per_node) == (1, 2)
    script = (sweep.scripts / "array_000.sbatch").read_text()
    assert "#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n" in script
    assert "--nnodes=1 --nproc-per-node=2" in script
    assert [t.state for t in wait_for_final_states(array_of(sweep), 2)] == ["COMPLETED"] * 2
    for record in manifest.jobs:
        log = (sweep.path / record.log_path).read_text()
        # Rank 0 ran the code snapshot, as one of 2 ranks, with 1 of the job's 2 CPUs.
        assert f"code from {sweep.code / 'spd'}; 1 torch threads" in log, log
        assert "Data parallel: rank 0 of 2 on cpu" in log, log
        assert "rank 1 of 2" not in log  # the other rank logs warnings only
        check_equal_to_single_process(sweep, record, tmp_path)


def test_job_on_two_nodes(sweeps: Path, tmp_path: Path) -> None:
    """One job on 2 nodes x 1 process: srun starts a torchrun on each node; they meet at the
    first. Needs a cluster of 2 nodes (SPD_SLURM_NODES=2 scripts/slurm_cluster.sh start)."""
    if cluster_nodes() < 2:
        pytest.skip("the SLURM cluster has one node (start it with SPD_SLURM_NODES=2)")
    sweep_file = write_sweep_file(Path("dp2.yaml"), {"global": DATA_PARALLEL_RUN, "tms_5-2": {}})

    result = run("--sweep", str(sweep_file), "--nodes", "2", "--cpus-per-task", "1", *SLURM_ARGS)

    assert result.exit_code == 0, result.output
    sweep = the_sweep(sweeps)
    (record,) = sweep.read_manifest().jobs
    assert record.state == JobState.COMPLETED
    (task,) = wait_for_final_states(array_of(sweep), 1)
    assert task.state == "COMPLETED"
    nodes = subprocess.run(
        ["sacct", "-j", record.slurm_job_id, "-X", "-n", "-P", "-o", "NNodes"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert nodes == ["2"]
    assert "Data parallel: rank 0 of 2 on cpu" in (sweep.path / record.log_path).read_text()
    check_equal_to_single_process(sweep, record, tmp_path)


@pytest.mark.slow
@pytest.mark.usefixtures("requeue_meets_the_stop")
def test_data_parallel_job_requeued_on_usr2_resumes_from_its_checkpoint(sweeps: Path) -> None:
    """USR2 (time limit, preemption) reaches the job's srun, torchrun and both ranks: rank 0
    checkpoints and requeues the task, rank 1 leaves it to rank 0; the task restarts in 2
    processes and resumes. About 2 minutes here."""
    steps, log_freq = 3000, 50
    sweep_file = write_sweep_file(
        Path("dp_long.yaml"),
        {
            "global": SHORT_RUN
            | {"steps": steps, "eval_freq": steps, "save_freq": 50, "log_freq": log_freq},
            "tms_5-2": {},
        },
    )
    submitted = run(
        "--sweep",
        str(sweep_file),
        "--nproc-per-node",
        "2",
        "--cpus-per-task",
        "2",
        *SLURM_ARGS,
        "--no-wait",
    )
    assert submitted.exit_code == 0, submitted.output
    sweep = the_sweep(sweeps)
    (record,) = sweep.read_manifest().jobs
    run_dir = sweep.run_dir(record.job_id)
    wait_until(run_dir.checkpoint.exists, 180, "the job writing a checkpoint")
    assert not run_dir.is_complete(), "finished before it was interrupted"
    subprocess.run(
        ["scancel", "--batch", "--signal=USR2", record.slurm_job_id], check=True, timeout=30
    )

    finished = run("resume", sweep.sweep_id, "--poll-interval", "0.5", "--no-create_report")

    assert finished.exit_code == 0, finished.output
    (record,) = sweep.read_manifest().jobs
    assert_resumed_once(sweep, record, steps, log_freq)
    job_log = (sweep.path / record.log_path).read_text()
    assert job_log.count("Data parallel: rank 0 of 2 on cpu") == 2, job_log
    assert "SLURM stopped scontrol with the job it requeues" in job_log, job_log
