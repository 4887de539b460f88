"""The target of an lm run: a Hugging Face causal LM, or the tiny LM trained locally and cached."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spd.experiments.lm.pretrained import load_causal_lm, load_tokenizer, prepare_target
from spd.experiments.lm.task_config import LMDatasetConfig, LMTaskConfig, TinyLMTargetConfig
from spd.experiments.lm.tiny_corpus import write_tiny_corpus
from spd.experiments.lm.tiny_model import (
    build_tiny_lm,
    corpus_dataset_config,
    train_tiny_lm,
    train_word_tokenizer,
)
from spd.target_cache import load_or_train_target
from spd.tensor_files import load_tensor_file


def load_tiny_target(
    config: TinyLMTargetConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> tuple[nn.Module, Any, LMDatasetConfig]:
    """The tiny LM (trained, or from the cache or `pretrained_model_path`), its tokenizer and
    its corpus."""
    corpus_files = write_tiny_corpus(config.corpus)
    tokenizer = train_word_tokenizer(corpus_files["train"])
    if pretrained_model_path is not None:
        state = load_tensor_file(pretrained_model_path)
    else:
        state = load_or_train_target(
            "lm",
            config,
            lambda: train_tiny_lm(config, tokenizer, corpus_files, device, progress=progress),
        )
    model = build_tiny_lm(config, len(tokenizer), tokenizer.eos_token_id)
    model.load_state_dict(state)
    return prepare_target(model, device), tokenizer, corpus_dataset_config(corpus_files)


def load_target(
    task_config: LMTaskConfig,
    pretrained_model_path: Path | None,
    device: torch.device,
    *,
    progress: bool,
) -> tuple[nn.Module, Any, LMDatasetConfig]:
    """The target model, its tokenizer (None when the data is already tokenized) and the data."""
    if task_config.target is not None:
        model, tokenizer, corpus = load_tiny_target(
            task_config.target, pretrained_model_path, device, progress=progress
        )
        return model, tokenizer, task_config.dataset or corpus
    assert task_config.model is not None and task_config.dataset is not None  # LMTaskConfig checks
    if pretrained_model_path is not None:
        raise ValueError("for an lm task, give a local model directory as task_config.model, "
                         "not as pretrained_model_path")
    model = load_causal_lm(task_config.model, task_config.revision, task_config.dtype, device)
    tokenizer = None
    if not task_config.dataset.is_tokenized:
        tokenizer_name = task_config.tokenizer or task_config.model
        revision = task_config.revision if task_config.tokenizer is None else None
        tokenizer = load_tokenizer(tokenizer_name, revision)
    return model, tokenizer, task_config.dataset
