"""What each task of an array runs: `python -m orchestrator.backends.slurm.array_task <submitit
folder> <staging folder>` (see orchestrator.backends.slurm.submissions)."""

import sys
from pathlib import Path

from orchestrator.backends import submitit_adapter


def main() -> None:
    folder, staging = sys.argv[1:]
    submitit_adapter.run_array_task(Path(folder), Path(staging))


if __name__ == "__main__":
    main()
