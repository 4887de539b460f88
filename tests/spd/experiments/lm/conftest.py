"""Tiny Llama and GPT-2 models saved with save_pretrained, a word-level tokenizer and a local text
corpus: everything an lm run needs, built here, with no download."""

import random
from pathlib import Path
from typing import Any

import datasets
import pytest

from spd.experiments.lm.task_config import TinyLMTargetConfig
from spd.experiments.lm.tiny_corpus import generate_documents
from spd.experiments.lm.tiny_model import build_tiny_lm, train_word_tokenizer

TINY_MODELS = {
    architecture: TinyLMTargetConfig(
        architecture=architecture, d_model=16, n_layers=1, n_heads=2, d_mlp=32, context_length=32
    )
    for architecture in ("llama", "gpt2")
}


@pytest.fixture(scope="session", autouse=True)
def datasets_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`datasets` caches what it loads and tokenizes: keep that out of the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
        yield


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    files = {}
    for split, n_documents in (("train", 300), ("validation", 40)):
        files[split] = directory / f"{split}.txt"
        files[split].write_text("\n".join(generate_documents(n_documents, rng)) + "\n")
    return files


@pytest.fixture(scope="session")
def tokenizer(corpus_files: dict[str, Path]) -> Any:
    return train_word_tokenizer(corpus_files["train"])


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Path]:
    """{architecture: directory} of untrained tiny models with their tokenizer."""
    directories = {}
    for architecture, config in TINY_MODELS.items():
        directory = tmp_path_factory.mktemp(architecture)
        model = build_tiny_lm(config, len(tokenizer), tokenizer.eos_token_id)
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        directories[architecture] = directory
    return directories


@pytest.fixture
def lm_config(saved_models: dict[str, Path], corpus_files: dict[str, Path]) -> Any:
    """(architecture, patterns, **overrides) -> a short lm run's config dict on the local corpus."""

    def make(architecture: str, patterns: list[list[Any]], **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "task_config": {
                "task_name": "lm",
                "model": str(saved_models[architecture]),
                "max_seq_len": 16,
                "dataset": {
                    "path": "text",
                    "data_files": {split: str(path) for split, path in corpus_files.items()},
                    "eval_split": "validation",
                },
            },
            "target_module_patterns": patterns,
            "losses": {
                "faithfulness": {"coeff": 1.0},
                "importance_minimality": {"coeff": 1e-3, "pnorm": 1.0},
                "stochastic_recon": {"coeff": 1.0},
                "stochastic_recon_layerwise": {"coeff": 1.0},
            },
            "output_loss_type": "kl",
            "steps": 40,
            "batch_size": 8,
            "lr": 1e-2,
            "eval_freq": 20,
            "log_freq": 1,
            "save_freq": None,
            "device": "cpu",
        }
        return config | overrides

    return make
