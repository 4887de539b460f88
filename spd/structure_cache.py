"""Resolved module structures kept on disk, so that validating the configs of a structure that
was resolved before needs neither torch nor the target's module tree.

spd.validate resolves each distinct structure of a config (its STRUCTURE_FIELDS: the task and
its target, the module patterns, identities, tied pairs and CI function) against the target's
module tree built on the meta device: importing torch for that takes seconds, most of a sweep's
dry run. What it finds depends on the structure and on the code that builds and resolves the
tree, so an entry is stored under both, `$SPD_CACHE_DIR/structures/<code>/<structure>.json`:
<code> hashes every .py file of the spd package and the installed versions of the libraries
that build module trees, <structure> hashes the structure. Changed code or a changed structure
is another key, so an entry is never stale. A structure that also depends on files outside the
key (an LM named by `model`: its config.json) is not stored (`covers`). What building the tree
logs (a tied pair decomposed untied, for its different C) is logged where it is built, not
again for a stored structure; the run logs it too.
"""

import functools
import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

from spd.atomic_io import atomic_write_json
from spd.cache_dir import cache_dir
from spd.config import Config
from spd.experiments.lm.task_config import LMTaskConfig

PACKAGE_DIR = Path(__file__).parent
"""The spd package, whose sources build and resolve module trees."""
LIBRARIES = ("torch", "transformers")
"""Installed packages whose code builds target module trees (transformers: the LMs)."""


def installed_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """A hash of the package's sources (each .py file's path and bytes) and of the LIBRARIES'
    versions: everything, besides a structure, that its resolution depends on."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        source = path.read_bytes()
        name = path.relative_to(package_dir).as_posix()
        digest.update(f"{name}\0{len(source)}\0".encode() + source)
    for library in LIBRARIES:
        digest.update(f"{library}\0{installed_version(library)}\0".encode())
    return digest.hexdigest()


def covers(config: Config) -> bool:
    """Whether the key holds everything the config's structure depends on: not for an LM named
    by `model`, whose module tree comes from its config.json (a hub cache or a directory)."""
    task = config.task_config
    return not (isinstance(task, LMTaskConfig) and task.model is not None)


class StructureCache:
    """JSON entries by structure (any string that determines the entry), for the code that runs
    now; `directory` defaults to `$SPD_CACHE_DIR/structures`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else cache_dir() / "structures"

    @functools.cached_property
    def code(self) -> str:
        """Computed on first use (about 10 ms), once per cache object. (Sources edited while a
        command runs may be stored under either version, as the command may run either: like
        an edit between two of its imports, that is a race with the editor, not a stale key.)"""
        return code_fingerprint()

    def path(self, structure: str) -> Path:
        return self.directory / self.code / f"{hashlib.sha256(structure.encode()).hexdigest()}.json"

    def load(self, structure: str) -> Any | None:
        """The entry of `structure`, or None when there is none or it cannot be read (a damaged
        file: the caller resolves the structure and stores it again)."""
        try:
            return json.loads(self.path(structure).read_text())
        except (OSError, ValueError):
            return None

    def store(self, structure: str, entry: Any) -> None:
        """Written atomically: concurrent writers of one structure write the same entry."""
        atomic_write_json(self.path(structure), entry)
