"""The language-model task: a frozen causal LM, token sequences of a dataset, and LM metrics."""

from pathlib import Path

import torch

from spd.experiments.lm.metrics import lm_eval_metrics
from spd.experiments.lm.task_config import LMTaskConfig
from spd.tasks import BatchSampler, Task

TINY_SKELETON_VOCAB = 2
"""The tiny LM's vocabulary comes from its corpus; its module tree does not depend on the size."""


def lm_skeleton(task_config: LMTaskConfig) -> torch.nn.Module:
    """The target's module tree without weights (meta device): from the tiny LM's config, or
    the Hugging Face model's config.json (local directory or hub cache). Raises ValueError with
    what to do when the model or its tokenizer cannot be found here."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from spd.experiments.lm.pretrained import require_local_or_cached, require_tokenizer
    from spd.experiments.lm.tiny_model import build_tiny_lm

    with torch.device("meta"):
        if task_config.target is not None:
            return build_tiny_lm(task_config.target, TINY_SKELETON_VOCAB, 0)
        assert task_config.model is not None and task_config.dataset is not None
        require_local_or_cached(task_config.model, task_config.revision, "model", "config.json")
        if not task_config.dataset.is_tokenized:
            require_tokenizer(task_config.model, task_config.tokenizer, task_config.revision)
        model_config = AutoConfig.from_pretrained(task_config.model, revision=task_config.revision)
        return AutoModelForCausalLM.from_config(model_config)


def build_lm_task(
    task_config: LMTaskConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> Task:
    # transformers and datasets take seconds to import: only lm runs import them.
    from spd.experiments.lm.data import StreamSampler, make_sampler
    from spd.experiments.lm.pretrained import vocab_size
    from spd.experiments.lm.target import load_target

    model, tokenizer, dataset = load_target(
        task_config, pretrained_model_path, device, progress=progress
    )
    n_tokens = vocab_size(model)

    def sampler(split: str) -> BatchSampler:
        return make_sampler(dataset, split, tokenizer, task_config.max_seq_len, n_tokens, device)

    eval_split = dataset.eval_split or dataset.train_split
    train = sampler(dataset.train_split)
    return Task(
        target=model,
        sample_batch=train,
        sample_eval_batch=None if eval_split == dataset.train_split else sampler(eval_split),
        # Data-parallel training splits a stream between the ranks; evaluation (rank 0 alone)
        # still reads it whole, through sample_batch.
        rank_sampler=train.shard if isinstance(train, StreamSampler) else None,
        output_attr="logits",
        positions_per_input=task_config.max_seq_len,
        eval_metrics=lm_eval_metrics,
    )
