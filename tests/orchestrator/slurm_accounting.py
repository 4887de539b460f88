"""Reading SLURM's accounting (sacct) in tests: array tasks, their final states and overlaps."""

import subprocess
import time
from dataclasses import dataclass
from datetime import datetime

FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
    }
)


@dataclass(frozen=True)
class Task:
    job_id: str
    state: str
    start: str
    end: str


def array_tasks(array_id: str) -> list[Task]:
    """The array's tasks as sacct lists them (a still-pending range shows as one `A_[i-j]` row)."""
    out = subprocess.run(
        ["sacct", "-j", array_id, "-X", "-n", "-P", "-o", "JobID,State,Start,End"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    tasks = []
    for line in out.splitlines():
        if line.strip():
            job_id, state, start, end = line.split("|")
            tasks.append(Task(job_id, state.split()[0] if state.strip() else "", start, end))
    return tasks


def wait_for_final_states(array_id: str, n_tasks: int, timeout_s: float = 90) -> list[Task]:
    """Poll sacct until all n_tasks tasks of the array have a final state."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = [t for t in array_tasks(array_id) if t.job_id.rsplit("_", 1)[-1].isdigit()]
        if len(tasks) == n_tasks and all(t.state in FINAL_STATES for t in tasks):
            return sorted(tasks, key=lambda t: int(t.job_id.rsplit("_", 1)[-1]))
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"array {array_id} not finished in sacct after {timeout_s} s: {tasks}"
            )
        time.sleep(0.5)


def wait_until_nothing_runs(array_id: str, timeout_s: float = 90) -> None:
    """Poll sacct until every row of the array (tasks and never-started ranges) is final."""
    deadline = time.monotonic() + timeout_s
    while not all(t.state in FINAL_STATES for t in array_tasks(array_id)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"array {array_id} still has live tasks after {timeout_s} s")
        time.sleep(0.5)


def max_concurrency(tasks: list[Task]) -> int:
    """Most tasks running at one instant (sacct has 1 s resolution: a task ending in the second
    another starts did not overlap it)."""
    events = [(datetime.fromisoformat(t.start), 1) for t in tasks]
    events += [(datetime.fromisoformat(t.end), -1) for t in tasks]
    running = most = 0
    for _, delta in sorted(events):
        running += delta
        most = max(most, running)
    return most
