"""--n_agents across a sweep's arrays, without idle slots.

One array holds at most MaxArraySize tasks, so a larger submission is several arrays, and a
re-run may add arrays next to those still queued. Each array's throttle (`%n`) caps only its own
tasks, so every array but the first is submitted waiting (`afterany`) for the one before: the cap
holds even when nobody watches, but the tail of an array would idle slots while the next one
waits for its slowest task.

`hold_cap` hands those slots over: from squeue it bounds how many tasks each array that is not
waiting may still run at once (its unfinished tasks, at most its throttle), and gives the rest
of the cap to the next arrays in order: it raises the throttle of an array that was let go
early, and lets the first waiting one go (throttle set, dependency removed, in one update) with
what is left. An array only ever loses unfinished tasks between squeue's answer and the update,
so the cap holds whenever the update lands; a slot handed over late is only idle for a while.
The launcher calls it on every poll while it follows the sweep; without it the arrays run one
after another, as submitted.
"""

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

SQUEUE_FORMAT = "%F|%i|%T|%E|%o"
"""Array id, task id (a pending range as `A_[2-5,7%3]`), state, remaining dependency, command."""

NO_DEPENDENCY = frozenset({"", "(null)"})

PENDING_RANGE = re.compile(r"^\d+_\[(?P<tasks>[^%\]]*)(?:%(?P<throttle>\d+))?\]$")

SCHEDULER_TIMEOUT_S = 60


class CapUnavailable(RuntimeError):
    """squeue or scontrol could not answer; the arrays keep running as submitted."""


@dataclass(frozen=True)
class QueuedArray:
    """One of the sweep's arrays, as squeue shows it."""

    array_id: int
    unfinished: int
    """Tasks not ended: queued (also requeued ones) and running."""
    running: int
    throttle: int | None
    """None when squeue shows no pending range, which carries it."""
    waiting: bool
    """Its dependency on an earlier array is not fulfilled yet."""

    def most_at_once(self) -> int:
        """How many of its tasks may run at one time from now on (throttles are never lowered
        below what runs, so a running task counts even above the throttle)."""
        if self.throttle is None:
            return self.unfinished
        return min(self.unfinished, max(self.throttle, self.running))


@dataclass(frozen=True)
class CapUpdate:
    array_id: int
    throttle: int
    release: bool
    """Remove its dependency: it may start now."""

    def scontrol_args(self) -> list[str]:
        args = ["update", f"JobId={self.array_id}", f"ArrayTaskThrottle={self.throttle}"]
        return [*args, "Dependency="] if self.release else args


def plan_updates(arrays: list[QueuedArray], n_agents: int) -> list[CapUpdate]:
    """The updates that give the slots `arrays` (ordered by submission) cannot use any more to
    the next ones, never letting more than n_agents tasks run at once."""
    free = n_agents - sum(array.most_at_once() for array in arrays if not array.waiting)
    updates = []
    for array in sorted(arrays, key=lambda a: a.array_id):
        if free <= 0:
            break
        if array.waiting:
            throttle = min(free, array.unfinished)
            updates.append(CapUpdate(array.array_id, throttle, release=True))
            free -= throttle
        elif array.throttle is not None and array.most_at_once() < array.unfinished:
            extra = min(free, array.unfinished - array.most_at_once())
            updates.append(CapUpdate(array.array_id, array.most_at_once() + extra, release=False))
            free -= extra
    return updates


def parse_squeue(lines: list[str], scripts: Path) -> list[QueuedArray]:
    """The arrays submitted from a script in `scripts`, from squeue lines in SQUEUE_FORMAT."""
    prefix = f"{scripts.resolve()}/"
    rows: dict[int, list[tuple[str, str, str]]] = {}
    for line in lines:
        array_id, task, state, dependency, command = line.split("|", 4)
        if command.startswith(prefix):
            rows.setdefault(int(array_id), []).append((task, state, dependency))
    arrays = []
    for array_id, tasks in sorted(rows.items()):
        unfinished = running = 0
        throttle = None
        waiting = False
        for task, state, dependency in tasks:
            waiting = waiting or dependency not in NO_DEPENDENCY
            pending_range = PENDING_RANGE.match(task)
            if pending_range is not None:
                unfinished += count_tasks(pending_range["tasks"])
                if pending_range["throttle"] is not None:
                    throttle = int(pending_range["throttle"])
            else:
                unfinished += 1
                running += state != "PENDING"
        arrays.append(QueuedArray(array_id, unfinished, running, throttle, waiting))
    return arrays


def count_tasks(ranges: str) -> int:
    """Tasks in squeue's task list, e.g. `2-5,7` or `0-10:2`."""
    total = 0
    for part in ranges.split(","):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        total += len(range(int(first), int(last or first) + 1, int(step or 1)))
    return total


def hold_cap(scripts: Path, n_agents: int) -> list[CapUpdate]:
    """Hand the slots the sweep's arrays (those submitted from `scripts`) leave idle to the next
    ones; returns the updates made."""
    # Without -r: a throttle shows only on the range of an array's pending tasks.
    lines = scheduler(["squeue", "--me", "-h", "-o", SQUEUE_FORMAT]).splitlines()
    updates = plan_updates(parse_squeue(lines, scripts), n_agents)
    for update in updates:
        scheduler(["scontrol", *update.scontrol_args()])
    return updates


def scheduler(command: list[str]) -> str:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise CapUnavailable(f"{shlex.join(command)}: {e}") from None
