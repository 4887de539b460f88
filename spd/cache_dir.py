"""Where spd keeps what it can always compute again (trained targets, resolved module
structures): `$SPD_CACHE_DIR`, by default `~/.cache/spd`."""

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("SPD_CACHE_DIR", Path.home() / ".cache" / "spd"))
