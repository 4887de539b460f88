"""The tiny language model of `tiny_lm_local`: a small Llama or GPT-2 trained on the tiny corpus.

Everything is derived from the config: the corpus is generated from its seed, the word-level
tokenizer is trained on the corpus (deterministic: words ordered by count, then alphabetically),
and the trained weights are cached by the config's hash. Nothing is downloaded.
"""

import logging
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torch import Tensor, nn
from tqdm import tqdm
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from spd.experiments.lm.data import SequenceSampler, load_split, make_tokenize
from spd.experiments.lm.task_config import LMDatasetConfig, TinyLMTargetConfig

logger = logging.getLogger(__name__)

UNK, EOS = "[unk]", "[eos]"


def corpus_dataset_config(corpus_files: dict[str, Path]) -> LMDatasetConfig:
    """The tiny corpus as a local text dataset: one document per line."""
    return LMDatasetConfig(
        path="text",
        data_files={split: str(path) for split, path in corpus_files.items()},
        train_split="train",
        eval_split="validation",
    )


def train_word_tokenizer(train_file: Path) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train([str(train_file)], trainers.WordLevelTrainer(special_tokens=[UNK, EOS]))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token=UNK, eos_token=EOS)


def build_tiny_lm(config: TinyLMTargetConfig, vocab_size: int, eos_token_id: int) -> nn.Module:
    if config.architecture == "llama":
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=config.d_model,
            intermediate_size=config.d_mlp,
            num_hidden_layers=config.n_layers,
            num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_heads,
            max_position_embeddings=config.context_length,
            tie_word_embeddings=False,
            bos_token_id=eos_token_id,
            eos_token_id=eos_token_id,
        ))
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=vocab_size,
        n_embd=config.d_model,
        n_inner=config.d_mlp,
        n_layer=config.n_layers,
        n_head=config.n_heads,
        n_positions=config.context_length,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
    ))


def train_tiny_lm(
    config: TinyLMTargetConfig,
    tokenizer: Any,
    corpus_files: dict[str, Path],
    device: torch.device,
    *,
    progress: bool,
) -> dict[str, Tensor]:
    """Next-token prediction on the corpus' train split; returns the trained state dict."""
    torch.manual_seed(config.train_seed)
    model = build_tiny_lm(config, len(tokenizer), tokenizer.eos_token_id).to(device).train()
    dataset_config = corpus_dataset_config(corpus_files)
    sampler = SequenceSampler(
        load_split(dataset_config, dataset_config.train_split),
        make_tokenize(tokenizer, is_tokenized=False),
        dataset_config.column,
        config.context_length,
        len(tokenizer),
        device,
    )
    generator = torch.Generator(device=device).manual_seed(config.train_seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train_lr, weight_decay=config.train_weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / config.train_steps)
    steps = tqdm(
        range(config.train_steps), desc="train tiny LM target", leave=False, disable=not progress
    )
    for _ in steps:
        batch = sampler(config.train_batch_size, generator)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    logger.info("Tiny LM target trained: final train loss %.3f", loss.item())
    return {name: value.detach().cpu() for name, value in model.state_dict().items()}
