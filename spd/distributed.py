"""One decomposition in several processes (data parallel), as one rank of `torch.distributed`.

A process started by `torch.distributed.run` (torchrun; see spd.distributed_launch) finds its
rank and world size in its environment; `data_parallel(device_name)` joins the process group
(NCCL when the rank has a CUDA device, one device per local rank, else gloo) and leaves it at
the end. Without those variables it yields the single-process group, which does nothing.

How a step is split (spd.train) so that N ranks compute what one process computes, up to the
order of float additions: every rank draws the same global batch and mask noise from the same
seeded generators, and takes its own contiguous slice of the rows. Each rank's loss is its rows'
share of the global weighted mean, so the gradients summed over ranks (one all-reduce per step,
together with the logged terms and the alive tracker's firing flags) are the global gradients,
and every rank applies the same optimizer step. Generators, tracker and parameters stay
identical on every rank: rank 0's checkpoint is the whole state, and it resumes with any number
of ranks.

A streamed dataset is the exception (Task.rank_sampler): drawing the global batch would have
every rank read and tokenize all of it, so each rank reads only its own share of the stream and
draws its own rows (mask noise is still drawn for the whole step). Each rank's data generator
then holds its own place in its share; the checkpoint keeps one per rank, and resumes with as
many ranks only.
"""

import contextlib
import datetime
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from spd.batch_split import DataParallelError
from spd.config_loading import ConfigError
from spd.dir_lock import DirBusyError
from spd.divergence import TrainingDiverged

WORLD_SIZE_ENV = "WORLD_SIZE"
RANK_ENV = "RANK"
LOCAL_RANK_ENV = "LOCAL_RANK"
TIMEOUT_ENV = "SPD_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600
"""How long a rank waits in a collective for the others (e.g. while rank 0 evaluates) before it
gives up; a rank that dies closes its connections, which the others see at once."""


class RankLost(RuntimeError):
    """A collective failed: another rank stopped (or stopped answering) mid-run."""


@contextlib.contextmanager
def collective(dp: "DataParallel", what: str) -> Iterator[None]:
    """Turn the failure of a collective into RankLost, naming this rank."""
    try:
        yield
    except RuntimeError as e:  # gloo and NCCL raise DistBackendError or a plain RuntimeError
        # gloo's message starts with its source location and goes on with advice; keep the cause
        cause = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip()).split(". ")[0][:160]
        raise RankLost(
            f"rank {dp.rank} of {dp.world_size} lost the other ranks during {what} "
            f"({cause or type(e).__name__}); the run stops here"
        ) from None


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the ranks of one decomposition."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes everything a run leaves on disk or in W&B."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def rows(self, n_rows: int) -> slice:
        """This rank's contiguous part of `n_rows` rows (sizes differ by at most one)."""
        base, extra = divmod(n_rows, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over ranks, in place."""
        if self.distributed:
            with collective(self, "a training step"):
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world_size
        with collective(self, "a checkpoint"):
            dist.all_gather_object(values, value)
        return values

    def broadcast_from_main(self, value: Any) -> Any:
        """Rank 0's `value` (picklable), on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        with collective(self, "a message from rank 0"):
            dist.broadcast_object_list(box, src=0)
        return box[0]


def device_for_rank(device_name: str, local_rank: int) -> torch.device:
    """The device of a rank: its own CUDA device (cuda:<local rank>) or the CPU."""
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cpu":
        return device
    if device.type != "cuda" or device.index is not None:
        raise DataParallelError(
            f"device {device_name!r} with several processes: use device auto, cuda or cpu "
            "(each rank then takes cuda:<local rank>, or the CPU)"
        )
    if local_rank >= torch.cuda.device_count():
        raise DataParallelError(
            f"local rank {local_rank} has no CUDA device ({torch.cuda.device_count()} visible): "
            "start at most one process per GPU"
        )
    return torch.device("cuda", local_rank)


def launched_world_size() -> int:
    """The number of ranks torchrun started this process among (1: not launched by it)."""
    return int(os.environ.get(WORLD_SIZE_ENV, "1"))


@contextlib.contextmanager
def data_parallel(device_name: str) -> Iterator[DataParallel]:
    """This process's DataParallel; joins (and at the end leaves) the process group when it
    was started as one of several ranks."""
    world_size = launched_world_size()
    if world_size == 1:
        yield DataParallel(device=resolve_device(device_name))
        return
    local_rank = int(os.environ.get(LOCAL_RANK_ENV, "0"))
    device = device_for_rank(device_name, local_rank)
    joined_here = not dist.is_initialized()
    if joined_here:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=timeout,
            device_id=device if device.type == "cuda" else None,
        )
    try:
        yield DataParallel(device, rank=dist.get_rank(), world_size=dist.get_world_size())
        if joined_here:
            leave_together()
    except SHARED_ERRORS:
        if joined_here:
            leave_together()
        raise
    finally:
        if joined_here:
            dist.destroy_process_group()


SHARED_ERRORS = (ConfigError, DirBusyError, TrainingDiverged)
"""Errors that every rank raises at the same point (rank 0 tells the others, or they hold the
same state); a rank that dies alone (RankLost in the others) leaves without waiting."""


def leave_together() -> None:
    """Wait until every rank is past its last collective: destroying a gloo group while a peer
    still uses it aborts that peer ("terminate called without an active exception")."""
    with contextlib.suppress(RuntimeError):  # a peer already gone: nothing left to wait for
        dist.barrier()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
