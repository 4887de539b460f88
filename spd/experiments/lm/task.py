"""The language-model task: a frozen causal LM, token sequences of a dataset, and LM metrics."""

from pathlib import Path

import torch

from spd.experiments.lm.metrics import lm_eval_metrics
from spd.experiments.lm.task_config import LMTaskConfig
from spd.tasks import BatchSampler, Task


def build_lm_task(
    task_config: LMTaskConfig, pretrained_model_path: Path | None, device: torch.device
) -> Task:
    # transformers and datasets take seconds to import: only lm runs import them.
    from spd.experiments.lm.data import make_sampler
    from spd.experiments.lm.pretrained import vocab_size
    from spd.experiments.lm.target import load_target

    model, tokenizer, dataset = load_target(task_config, pretrained_model_path, device)
    n_tokens = vocab_size(model)

    def sampler(split: str) -> BatchSampler:
        return make_sampler(dataset, split, tokenizer, task_config.max_seq_len, n_tokens, device)

    eval_split = dataset.eval_split or dataset.train_split
    return Task(
        target=model,
        sample_batch=sampler(dataset.train_split),
        sample_eval_batch=None if eval_split == dataset.train_split else sampler(eval_split),
        output_attr="logits",
        positions_per_input=task_config.max_seq_len,
        eval_metrics=lm_eval_metrics,
    )
