"""What runs on a compute node (or in a local worker process): one job of a sweep.

submitit pickles a `DecompositionJob` at submission and calls it in the job. It reads the job's
resolved config from the sweep directory and runs the decomposition into the job's run
directory. It is Checkpointable: on USR2 (time limit, preemption) submitit requeues the same
call, and run_decomposition resumes from the run's checkpoint; a task that SLURM requeues by
itself also starts over with the same call and resumes the same way.
"""

import logging
import os
import sys
from pathlib import Path

import submitit
import yaml

import spd
from orchestrator.state.sweep_dir import SweepDir
from spd.config_loading import validate_config

logger = logging.getLogger(__name__)

LOGGED_PACKAGES = ("spd", "orchestrator")

# torch and spd.run are imported in the job, where they run: the orchestrator, which only pickles
# jobs, starts seconds faster without them.

THREAD_ENV_VARS = ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE")
"""Where a SLURM job learns how many CPUs it has, most specific first."""
LOCAL_WORLD_SIZE_ENV = "LOCAL_WORLD_SIZE"
"""torchrun: how many ranks it started on this node (a data-parallel job)."""
RANK_ENV = "RANK"
"""torchrun: this process's rank among all of them."""


class DecompositionJob(submitit.helpers.Checkpointable):
    def __init__(self, sweep_path: Path, job_id: str) -> None:
        self.sweep_path = Path(sweep_path)
        self.job_id = job_id

    def __call__(self) -> str:
        """Run (or resume, or find finished) the job; returns its summary.json path."""
        log_to_job_output()
        sweep = SweepDir(self.sweep_path)
        threads = set_torch_threads()
        logger.info(
            "Job %s of sweep %s; code from %s; %s torch threads",
            self.job_id,
            sweep.sweep_id,
            Path(spd.__file__).parent,
            threads,
        )
        from spd.run import run_decomposition

        config = validate_config(yaml.safe_load(sweep.config_path(self.job_id).read_text()))
        run_dir = sweep.run_dir(self.job_id)
        run_decomposition(config, run_dir.path, resume=True, progress=False)
        return str(run_dir.summary)


def log_to_job_output() -> None:
    """The packages' INFO logs into the job's log (submitit's own logger has its handler); a
    data-parallel job's ranks other than 0 log warnings and errors only."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logging.INFO if os.environ.get(RANK_ENV, "0") == "0" else logging.WARNING
    for name in LOGGED_PACKAGES:
        package_logger = logging.getLogger(name)
        package_logger.addHandler(handler)
        package_logger.setLevel(level)


def set_torch_threads() -> int:
    """Use the CPUs SLURM gave the job, shared by the ranks torchrun started on this node (a
    data-parallel job); elsewhere torch's default (which OMP_NUM_THREADS sets)."""
    import torch

    ranks_here = os.environ.get(LOCAL_WORLD_SIZE_ENV, "")
    ranks_here_n = int(ranks_here) if ranks_here.isdigit() and int(ranks_here) > 0 else 1
    for name in THREAD_ENV_VARS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            torch.set_num_threads(max(1, int(value) // ranks_here_n))
            break
    return torch.get_num_threads()
