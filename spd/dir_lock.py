"""A directory that one live process at a time may work in: `DirLock`.

The lock is an advisory `flock` on a `.lock` file in the directory, so the kernel releases it
when its holder dies, however it dies (kill -9, node reboot for local disks; NFS v4 and Lustre
release the locks of a dead client too). The file also records who holds it (host, PID, since
when) so that a refusal can name the holder, and so that the next holder can say whose lock of
a dead process it took over.
"""

import datetime as dt
import fcntl
import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from spd.strict_model import StrictModel

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class Holder(StrictModel):
    """The `.lock` file's content."""

    host: str
    pid: int
    since: str

    def __str__(self) -> str:
        return f"PID {self.pid} on {self.host}, since {self.since}"


class DirBusyError(RuntimeError):
    """Another live process holds the directory."""


class DirLock:
    """`with DirLock(path, what):` holds `path` (created if needed) or raises DirBusyError."""

    def __init__(self, directory: Path, what: str) -> None:
        self.path = Path(directory) / LOCK_FILE
        self.what = what
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # held open (and locked) until __exit__
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(file)
            file.close()
            raise DirBusyError(
                f"{self.what} {self.path.parent} is in use by "
                f"{holder or 'another process'}; wait for it to end, or stop it"
            ) from None
        previous = read_holder(file)
        if previous is not None:
            logger.info("Took over %s from %s, which has ended", self.path.parent, previous)
        holder = Holder(
            host=socket.gethostname(),
            pid=os.getpid(),
            since=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        )
        file.seek(0)
        file.truncate()
        file.write(holder.model_dump_json() + "\n")
        file.flush()
        self._file = file
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is None:
            return
        # Empty before unlocking: a holder on record is one that did not end cleanly.
        self._file.seek(0)
        self._file.truncate()
        self._file.flush()
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def read_holder(file: IO[str]) -> Holder | None:
    file.seek(0)
    text = file.read().strip()
    if not text:
        return None
    try:
        return Holder.model_validate_json(text)
    except ValueError:
        return None
