"""spd.validate's device check (the rest of validation is exercised through the commands, see
test_bad_inputs, and by test_structure_cache)."""

import pytest
import torch

from spd.validate import DEVICE_TYPES, device_problems

SPELLINGS = [
    "auto", "cpu", "cpu:0", "cuda", "cuda:0", "cuda:1", "cuda:127", "cuda:128", "cuda:256",
    "cuda:01", "cuda:-1", "cuda:", "cuda:1:2", "CUDA", " cuda", "cuda ", "mps", "mps:0", "meta",
    "xpu", "tpu9", "",
]  # fmt: skip


def torch_reads_as_written(device: str) -> bool:
    """torch.device reads it as one of DEVICE_TYPES, with the index written (8 bits: "cuda:256"
    is cuda:0)."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        return False
    return parsed.type in DEVICE_TYPES and str(parsed) == device


@pytest.mark.parametrize("device", SPELLINGS)
def test_a_device_is_accepted_when_torch_reads_it_as_written(device: str) -> None:
    """The spelling is checked without torch (a sweep's validation does not import it)."""
    accepted = device_problems(device, check_here=False) == []
    assert accepted == (device == "auto" or torch_reads_as_written(device))
