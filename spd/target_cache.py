"""Trained target models, cached on disk by the hash of the config that defines them.

The cache lives in `$SPD_CACHE_DIR/targets` (default `~/.cache/spd/targets`). Concurrent jobs
that need the same uncached target train it once: one trains, the others wait (a file lock) and
load what it published (atomically, by a rename).
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from spd.cache_dir import cache_dir
from spd.strict_model import StrictModel
from spd.tensor_files import load_tensor_file

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
LOCK_SUFFIX = ".lock"
CONFIG_FILE = "target_config.json"


def cache_root() -> Path:
    return cache_dir() / "targets"


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
    """The state dict of the target `config` defines: from the cache, or trained and cached.

    Processes that need the same uncached target (the array tasks of a sweep) train it once:
    the first takes the target's lock and trains, the others wait for it and load its result."""
    target_dir = cached_target_dir(kind, config)
    if (target_dir / MODEL_FILE).exists():
        logger.info("Using cached %s target %s", kind, target_dir)
        return load_tensor_file(target_dir / MODEL_FILE)
    with training_lock(target_dir):
        if (target_dir / MODEL_FILE).exists():
            logger.info("Using %s target %s, trained meanwhile by another process", kind, target_dir)
            return load_tensor_file(target_dir / MODEL_FILE)
        logger.info("Training %s target (not cached yet at %s)", kind, target_dir)
        state = train()
        publish(target_dir, state, config)
    return state


@contextlib.contextmanager
def training_lock(target_dir: Path) -> Iterator[None]:
    """Held while one process trains the target of `target_dir` (a `flock`, released by the
    system if that process dies, so a waiter then trains it itself)."""
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(target_dir.parent / f".{target_dir.name}{LOCK_SUFFIX}", "a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Waiting for another process that is training the target %s", target_dir)
            fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def publish(target_dir: Path, state: dict[str, Tensor], config: StrictModel) -> None:
    """Write the target into the cache at once (a rename): readers never see half of it."""
    staging = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}."))
    torch.save(state, staging / MODEL_FILE)
    (staging / CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    try:
        staging.rename(target_dir)
    except OSError:  # published meanwhile by a process that did not take the lock (older spd)
        shutil.rmtree(staging)
