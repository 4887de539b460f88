"""A user metric that holds a job at its first evaluation while the test keeps its gate closed,
so a test can keep one job running for exactly as long as it needs.

The test names a directory in GATE_DIR_ENV and creates `closed_<seed>` there; the job of that
seed then waits until the file is gone. Without the file the hook does nothing.
"""

import os
import time
from pathlib import Path
from typing import Any

GATE_DIR_ENV = "SPD_TEST_GATE_DIR"
HOOK = "tests.orchestrator.backends.slurm.gate_hook:wait_at_closed_gate"
MAX_WAIT_S = 300
"""A test that never opens the gate does not leave the job behind for good."""
POLL_S = 0.2


def closed_gate(directory: Path, seed: int) -> Path:
    return directory / f"closed_{seed}"


def wait_at_closed_gate(model: Any, task: Any, config: Any) -> dict[str, float]:
    gate = closed_gate(Path(os.environ[GATE_DIR_ENV]), config.seed)
    deadline = time.monotonic() + MAX_WAIT_S
    while gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(POLL_S)
    return {}
