"""From a config's task to the Task the training loop runs, and to the target's bare module
tree (for validation): one builder of each per task name."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from spd.config import Config
from spd.experiments.lm.task import build_lm_task, lm_skeleton
from spd.experiments.resid_mlp.task import build_resid_mlp_task, resid_mlp_skeleton
from spd.experiments.tms.task import build_tms_task, tms_skeleton
from spd.tasks import Task


class TaskBuilder(Protocol):
    """Builds a task from its task config; `progress` shows a bar while a target is trained."""

    def __call__(
        self,
        task_config: Any,
        pretrained_model_path: Path | None,
        device: torch.device,
        *,
        progress: bool,
    ) -> Task: ...


SkeletonBuilder = Callable[[Any], nn.Module]

TASK_BUILDERS: dict[str, TaskBuilder] = {
    "tms": build_tms_task,
    "resid_mlp": build_resid_mlp_task,
    "lm": build_lm_task,
}
SKELETON_BUILDERS: dict[str, SkeletonBuilder] = {
    "tms": tms_skeleton,
    "resid_mlp": resid_mlp_skeleton,
    "lm": lm_skeleton,
}


def build_task(config: Config, device: torch.device, *, progress: bool) -> Task:
    task_config = config.task_config
    return TASK_BUILDERS[task_config.task_name](
        task_config, config.pretrained_model_path, device, progress=progress
    )


def build_target_skeleton(config: Config) -> nn.Module:
    """The target's modules on the meta device: no weights, no target training, no data."""
    return SKELETON_BUILDERS[config.task_config.task_name](config.task_config)
