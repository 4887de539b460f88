"""Writes that either happen whole or not at all: write a sibling temp file, then rename over."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    try:
        fd, tmp_name = _temp_file_beside(path)
    except FileNotFoundError:  # rare: the first file of a directory
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = _temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _temp_file_beside(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def atomic_write_text(path: Path, text: str) -> None:
    _replace_atomically(path, lambda file: file.write(text.encode()))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch  # here: the orchestrator writes its JSON files through this module without torch

    _replace_atomically(path, lambda tmp: torch.save(obj, tmp))
