"""Speed of the `spd-sweep` command line: what a user waits for before anything runs.

Prints wall time, CPU time and peak RSS (medians of a few runs, each its own process in a fresh
SPD_RUNS_DIR) of:
- `spd-sweep --help` (the imports of the command line);
- a 1-job dry run, local and SLURM (`--experiments tms_5-2 --dry-run [--local]`): expansion, the
  core's validation, the sweep directory, the plan; its module structure comes from the cache
  that the first (unmeasured) run filled (spd.structure_cache), as for any sweep of structures
  validated before;
- the same on SLURM with an empty SPD_CACHE_DIR (`dry-run-cold`): the validation imports torch
  to build the target's module tree, as the first command of a new structure (or new code) does;
- a 10,000-job dry run on SLURM: a tms_5-2 grid of 100 lr values x 100 seeds (10,000 configs
  written, 10 sbatch scripts rendered).

    python bench/bench_orchestrator.py             # 3 runs per figure
    python bench/bench_orchestrator.py --runs 5 --cases help,dry-run-local

Targets on a 2-core machine: --help <= 1 s; a 1-job dry run <= 2 s; the 10,000-job dry run <= 5 s
and <= 300 MB peak RSS.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SPD_SWEEP = str(Path(sys.executable).parent / "spd-sweep")
GRID_SIDE = 100
"""The 10,000-job grid: this many lr values times this many seeds."""


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float
    peak_mib: float


def grid_file(directory: Path) -> Path:
    """A tms_5-2 sweep file of GRID_SIDE lr values x GRID_SIDE seeds."""
    lrs = ", ".join(repr(round(1e-4 * (1 + 0.05 * i), 8)) for i in range(GRID_SIDE))
    seeds = ", ".join(str(i) for i in range(GRID_SIDE))
    path = directory / "grid_lr_seed.yaml"
    path.write_text(f"tms_5-2:\n  lr: {{values: [{lrs}]}}\n  seed: {{values: [{seeds}]}}\n")
    return path


def measure(args: list[str], env: dict[str, str], scratch: Path, cold: bool = False) -> Measurement:
    """One run of `spd-sweep ARGS` in a fresh runs directory (`cold`: and cache directory);
    wait4 gives this child's own peak RSS (getrusage(RUSAGE_CHILDREN) would be the largest of all
    children so far)."""
    runs = Path(tempfile.mkdtemp(dir=scratch, prefix="runs-"))
    if cold:
        env = env | {"SPD_CACHE_DIR": tempfile.mkdtemp(dir=scratch, prefix="cache-")}
    with tempfile.TemporaryFile(dir=scratch) as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [SPD_SWEEP, *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env | {"SPD_RUNS_DIR": str(runs)},
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            output.seek(0)
            sys.exit(f"spd-sweep {' '.join(args)} failed:\n{output.read().decode()}")
    return Measurement(wall_s, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument(
        "--cases", default="help,dry-run-local,dry-run-slurm,dry-run-cold,dry-run-10k"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        env = os.environ | {
            "SPD_CACHE_DIR": os.environ.get("SPD_CACHE_DIR", str(scratch / "cache")),
            "WANDB_MODE": "offline",
            "HF_HUB_OFFLINE": "1",
        }
        one_job = ["--experiments", "tms_5-2", "--dry-run"]
        grid = [
            "--experiments",
            "tms_5-2",
            "--sweep",
            str(grid_file(scratch)),
            "--dry-run",
            "--yes",
        ]
        cases = {
            "help": ["--help"],
            "dry-run-local": [*one_job, "--local"],
            "dry-run-slurm": one_job,
            "dry-run-cold": one_job,
            "dry-run-10k": grid,
        }
        measure(one_job, env, scratch)  # trains nothing; fills the OS file and structure caches
        print(f"{'case':<15} {'wall s':>7} {'CPU s':>7} {'peak MiB':>9}  (median of {args.runs})")
        for name in args.cases.split(","):
            cold = name == "dry-run-cold"
            runs = [measure(cases[name], env, scratch, cold) for _ in range(args.runs)]
            print(
                f"{name:<15} {statistics.median(r.wall_s for r in runs):>7.2f} "
                f"{statistics.median(r.cpu_s for r in runs):>7.2f} "
                f"{statistics.median(r.peak_mib for r in runs):>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
