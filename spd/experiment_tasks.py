"""From a config's task to the Task the training loop runs: one builder per task name."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from spd.config import Config
from spd.experiments.lm.task import build_lm_task
from spd.experiments.resid_mlp.task import build_resid_mlp_task
from spd.experiments.tms.task import build_tms_task
from spd.tasks import Task

TaskBuilder = Callable[[Any, Path | None, torch.device], Task]

TASK_BUILDERS: dict[str, TaskBuilder] = {
    "tms": build_tms_task,
    "resid_mlp": build_resid_mlp_task,
    "lm": build_lm_task,
}


def build_task(config: Config, device: torch.device) -> Task:
    task_config = config.task_config
    return TASK_BUILDERS[task_config.task_name](task_config, config.pretrained_model_path, device)
