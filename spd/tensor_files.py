"""Reading the files a run or a target cache holds: tensors and plain containers only.

Every checkpoint, model and target file is read here, with `torch.load(weights_only=True)`, so
no file in a run, sweep or cache directory can run code when it is loaded. A file that cannot be
read (truncated, not a torch file, or a pickle of objects) is one `UnreadableTensorFile` with the
path and the reason, whatever torch raised.
"""

from pathlib import Path
from typing import Any


class UnreadableTensorFile(ValueError):
    """A file that does not hold tensors and plain containers."""


def load_tensor_file(path: Path) -> Any:
    """The content of `path`, on the CPU."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch raises many kinds for a truncated or foreign file
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise UnreadableTensorFile(f"{path} cannot be read ({reason})") from None
