"""Loading a causal LM and its tokenizer by hub name or from a local `save_pretrained` directory.

Offline (HF_HUB_OFFLINE=1) a hub name that is not in the local Hugging Face cache fails at once
with instructions, instead of with the library's generic connection error.
"""

from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer


class ModelUnavailableError(ValueError):
    """A model or tokenizer that is neither a local directory nor to be had from the hub here."""


def is_cached_on_hub_cache(name: str, revision: str | None, filename: str) -> bool:
    try:
        return isinstance(try_to_load_from_cache(name, filename, revision=revision), str)
    except HFValidationError:  # not even a valid repo id, so certainly not cached
        return False


def looks_like_a_path(name: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else (or anything that exists) is a path."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def require_local_or_cached(name: str, revision: str | None, what: str, filename: str) -> None:
    """Raise when `name` is a path that is not a directory, or when offline and `name` is
    neither a local directory nor in the hub cache."""
    if Path(name).expanduser().is_dir():
        return
    if looks_like_a_path(name):
        raise ModelUnavailableError(
            f"{what} {name!r} is not a directory: give a directory saved with save_pretrained "
            "(or a hub name)"
        )
    if not hub_constants.HF_HUB_OFFLINE:
        return
    if is_cached_on_hub_cache(name, revision, filename):
        return
    raise ModelUnavailableError(
        f"{what} {name!r} is not a local directory and not in the Hugging Face cache, and "
        "HF_HUB_OFFLINE=1 forbids downloading it: on a machine with internet, save it with "
        f"AutoModelForCausalLM.from_pretrained({name!r}).save_pretrained(DIR) (and its tokenizer "
        "with AutoTokenizer likewise), copy DIR here and set task_config.model (and "
        "task_config.tokenizer) to DIR"
    )


def load_causal_lm(name: str, revision: str | None, dtype: str, device: torch.device) -> nn.Module:
    require_local_or_cached(name, revision, "model", "config.json")
    model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=getattr(torch, dtype))
    return prepare_target(model, device)


TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def require_tokenizer(model: str, tokenizer: str | None, revision: str | None) -> None:
    """Raise when the text needs a tokenizer that cannot be found: a model directory without
    tokenizer files and no `task_config.tokenizer`, or a tokenizer that is not here."""
    if tokenizer is not None:
        require_local_or_cached(tokenizer, None, "tokenizer", "tokenizer_config.json")
        return
    directory = Path(model).expanduser()
    if directory.is_dir() and not any((directory / f).exists() for f in TOKENIZER_FILES):
        raise ModelUnavailableError(
            f"model directory {model!r} has no tokenizer (no {' or '.join(TOKENIZER_FILES)}): "
            "set task_config.tokenizer=DIR to a directory saved with "
            "AutoTokenizer.save_pretrained, or a hub name"
        )
    require_local_or_cached(model, revision, "tokenizer", "tokenizer_config.json")


def load_tokenizer(name: str, revision: str | None) -> Any:
    require_local_or_cached(name, revision, "tokenizer", "tokenizer_config.json")
    return AutoTokenizer.from_pretrained(name, revision=revision)


def prepare_target(model: nn.Module, device: torch.device) -> nn.Module:
    """Frozen, in eval mode (no dropout), without the generation cache that SPD never reads."""
    model.config.use_cache = False
    return model.to(device).requires_grad_(False).eval()


def vocab_size(model: nn.Module) -> int:
    return model.get_input_embeddings().num_embeddings
