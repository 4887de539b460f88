"""Whether a data-parallel setup can work, as far as arithmetic tells: its own module, without
torch, because the orchestrator checks every job of a sweep with it before it submits one
(spd.distributed, which runs the processes, imports torch: seconds)."""

from spd.config_loading import ConfigError


class DataParallelError(ConfigError):
    """A data-parallel setup that cannot work, with what to do instead."""


def check_batch_split(batch_size: int, world_size: int) -> None:
    """Raise DataParallelError unless the global batch splits evenly over the processes."""
    if batch_size % world_size:
        raise DataParallelError(
            f"batch_size {batch_size} (the global batch) does not split evenly over "
            f"{world_size} processes: choose a multiple of {world_size} (--set batch_size=...)"
        )
