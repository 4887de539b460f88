"""A user metric that parks an agent's trial at a chosen evaluation, so a test can kill the agent
at a known point instead of racing the training loop.

The test names a directory in PAUSE_DIR_ENV and writes its `pause` file with the number of the
evaluation (counted over the agent process, 1-based) at which to stop; the hook then writes
`paused` and waits until the agent is killed. Without the `pause` file it does nothing.
"""

import os
import time
from pathlib import Path
from typing import Any

PAUSE_DIR_ENV = "SPD_TEST_PAUSE_DIR"
HOOK = "tests.orchestrator.search.pause_hook:pause_at_evaluation"
MAX_PAUSE_S = 300
"""A test that never kills the agent does not leave it behind for good."""

_calls = 0


def pause_at_evaluation(model: Any, task: Any, config: Any) -> dict[str, float]:
    global _calls
    _calls += 1
    pause = Path(os.environ[PAUSE_DIR_ENV]) / "pause"
    if pause.exists() and int(pause.read_text()) == _calls:
        (pause.parent / "paused").write_text(str(os.getpid()))
        time.sleep(MAX_PAUSE_S)
        raise TimeoutError("the test did not kill the paused agent")
    return {}


def evaluations_per_trial(steps: int, eval_freq: int) -> int:
    """Evaluations at 0, eval_freq, ... below `steps`, and the final one."""
    return -(-steps // eval_freq) + 1
