"""bench/gpu_check.sh, the one-call GPU measurement: without a CUDA device it says so and measures
nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "bench" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="there is a CUDA device: the check would run")
def test_without_a_gpu_the_check_says_so_and_measures_nothing():
    result = subprocess.run(
        ["bash", str(SCRIPT)], env={"PY": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == (
        "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing measured"
    )
