"""Running spd-decompose in processes and comparing two runs: what the data-parallel tests share.

Tolerance: the ranks sum their parts of each step's gradients and losses, where one process sums
the whole batch at once; only the order of float additions differs. Measured after 20 steps:
parameters within 3e-7, every logged loss and metric within a relative 3e-7 (tms_5-2). The tests
allow 1e-5 (absolute on parameters, relative on metrics), far below any real difference (a wrong
share or a missing rank's rows moves the losses at the first step by percents).
"""

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from spd.tensor_files import load_tensor_file

TOLERANCE = 1e-5


def decompose(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spd.cli", *args], check=False, capture_output=True, text=True, timeout=600,
        **kwargs,
    )


def set_flags(overrides: list[str]) -> list[str]:
    return [f"--set={o}" for o in overrides]


def metric_records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def trained_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_tensor_file(run_dir / "model.pt")
    return {
        f"{group}.{name}": value
        for group in ("components", "ci_fns")
        for name, value in state[group].items()
    }


def assert_same_run(one: Path, two: Path, rel: float = TOLERANCE, atol: float = TOLERANCE) -> None:
    """Equal step records (numbers within `rel`) and trained parameters (within `atol`)."""
    records_one, records_two = metric_records(one), metric_records(two)
    assert [r["step"] for r in records_one] == [r["step"] for r in records_two]
    for a, b in zip(records_one, records_two, strict=True):
        assert a.keys() == b.keys()
        for name, value in a.items():
            if isinstance(value, float) and math.isfinite(value):
                assert b[name] == pytest.approx(value, rel=rel, abs=1e-9), (a["step"], name)
            else:
                assert b[name] == value, (a["step"], name)
    params_one, params_two = trained_parameters(one), trained_parameters(two)
    assert params_one.keys() == params_two.keys()
    for name, value in params_one.items():
        torch.testing.assert_close(params_two[name], value, atol=atol, rtol=0, msg=name)


def rank_pid(launcher: subprocess.Popen[str], rank: int) -> int | None:
    """The pid of the process of `rank` started (through torchrun) by `launcher`, if running."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and f"PPid:\t{launcher.pid}" in status:
            return int(entry.name)
    return None


def wait_for(condition: Any, what: str, timeout_s: float = 300) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
