"""Trained target models, cached on disk by the hash of the config that defines them.

The cache lives in `$SPD_CACHE_DIR/targets` (default `~/.cache/spd/targets`). Concurrent jobs
that need the same target may both train it; the first to finish publishes it atomically.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from spd.strict_model import StrictModel
from spd.tensor_files import load_tensor_file

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CONFIG_FILE = "target_config.json"


def cache_root() -> Path:
    return Path(os.environ.get("SPD_CACHE_DIR", Path.home() / ".cache" / "spd")) / "targets"


def config_hash(config: StrictModel) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def cached_target_dir(kind: str, config: StrictModel) -> Path:
    return cache_root() / f"{kind}-{config_hash(config)}"


def target_state(
    kind: str,
    config: StrictModel,
    pretrained_model_path: Path | None,
    train: Callable[[], dict[str, Tensor]],
) -> dict[str, Tensor]:
    """A target's state dict: from `pretrained_model_path` when given, else cached or trained."""
    if pretrained_model_path is not None:
        return load_tensor_file(pretrained_model_path)
    return load_or_train_target(kind, config, train)


def load_or_train_target(
    kind: str, config: StrictModel, train: Callable[[], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """The state dict of the target `config` defines: from the cache, or trained and cached."""
    target_dir = cached_target_dir(kind, config)
    if (target_dir / MODEL_FILE).exists():
        logger.info("Using cached %s target %s", kind, target_dir)
        return load_tensor_file(target_dir / MODEL_FILE)
    logger.info("Training %s target (not cached yet at %s)", kind, target_dir)
    state = train()
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}."))
    torch.save(state, staging / MODEL_FILE)
    (staging / CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    try:
        staging.rename(target_dir)
    except OSError:  # another job published the same target first; theirs is identical in kind
        shutil.rmtree(staging)
    return state
