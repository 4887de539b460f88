"""The code a sweep's jobs run: a copy of the packages taken at first submission, and its version.

Jobs put the snapshot first on PYTHONPATH, so editing (or checking out another commit of) the
working tree while a sweep runs or waits in the queue changes nothing for its jobs. A resumed
sweep keeps its snapshot, so all of its jobs run the same code.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import orchestrator
import spd

PACKAGES = (spd, orchestrator)
VERSION_FILE = "VERSION"


def package_dirs() -> list[Path]:
    # __path__, not __file__: it also names the directory of a namespace package.
    return [Path(next(iter(package.__path__))).resolve() for package in PACKAGES]


def snapshot_code(dest: Path, version: str) -> None:
    """Copy the packages into `dest` (all at once: a half-written snapshot is never visible)."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        for source in package_dirs():
            shutil.copytree(
                source, staging / source.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        (staging / VERSION_FILE).write_text(version + "\n")
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def code_version() -> str:
    """The git commit of the packages' checkout, with '-dirty' when it has changes; 'unknown'
    outside a git checkout."""
    repo = package_dirs()[0].parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=False
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")
