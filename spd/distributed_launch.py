"""`spd-decompose --nproc N`: one decomposition in N processes on this machine, started through
`torch.distributed.run` (torchrun) with its standalone rendezvous (a free port, so two runs on one
machine never clash). Each process runs `python -m spd.cli` with the user's arguments and finds
its rank in its environment (spd.distributed).

torchrun stops every rank as soon as one fails; this module turns its failure report into one
line naming the first rank that failed and how.
"""

import logging
import os
import signal

import torch

from spd.batch_split import DataParallelError, check_batch_split
from spd.config import Config
from spd.distributed import device_for_rank

logger = logging.getLogger(__name__)

THREADS_ENV = "OMP_NUM_THREADS"


class RanksFailed(RuntimeError):
    """A rank of a data-parallel run failed; the message says which and how."""

    def __init__(self, message: str, exit_code: int, reported_by_main_rank: bool):
        super().__init__(message)
        self.exit_code = exit_code
        """The first failed rank's own (1 for a signal)."""
        self.reported_by_main_rank = reported_by_main_rank
        """Rank 0 failed first, with an error it printed itself (an input error, a diverged
        run)."""


def check_nproc(config: Config, nproc: int) -> None:
    """Raise DataParallelError unless `config` can run in `nproc` processes here: one per CUDA
    device, or on the CPU one per core."""
    if nproc < 1:
        raise DataParallelError(f"--nproc {nproc}: give at least 1 process")
    device = device_for_rank(config.device, 0)  # raises for a device that ranks cannot share
    if device.type == "cuda":
        available, what = torch.cuda.device_count(), "CUDA devices"
    else:
        available, what = len(os.sched_getaffinity(0)), "CPU cores"
    if nproc > available:
        raise DataParallelError(
            f"--nproc {nproc} is more than this machine's {available} {what}: "
            f"use --nproc {available} or fewer"
        )
    check_batch_split(config.batch_size, nproc)


def describe_exit(exit_code: int) -> str:
    if exit_code < 0:
        return f"killed by {signal.Signals(-exit_code).name}"
    return f"exit code {exit_code}"


def launch_ranks(nproc: int, worker_args: list[str]) -> None:
    """Run `python -m spd.cli <worker_args>` as `nproc` ranks; raise RanksFailed if one fails."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # torchrun logs its rendezvous and, on failure, each rank's error file; the ranks print
    # their own errors, and RanksFailed says which failed first.
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    # torchrun gives each rank 1 thread when none is set; share this machine's cores instead.
    threads = os.environ.setdefault(
        THREADS_ENV, str(max(1, len(os.sched_getaffinity(0)) // nproc))
    )
    logger.info("Data parallel: %d processes, %s threads each (%s)", nproc, threads, THREADS_ENV)
    args = torchrun.parse_args([
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        "--module",
        "spd.cli",
        *worker_args,
    ])
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        rank, failure = min(e.failures.items(), key=lambda item: item[1].timestamp)
        raise RanksFailed(
            f"rank {rank} of {nproc} stopped ({describe_exit(failure.exitcode)}), and the other "
            "ranks with it; run the same command again to resume from the last checkpoint",
            failure.exitcode if failure.exitcode > 0 else 1,
            reported_by_main_rank=rank == 0 and failure.exitcode > 0,
        ) from None
