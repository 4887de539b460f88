"""Speed of the SPD training step on the TMS experiments, and the time to a finished tms_5-2 run.

Prints steps/s and peak memory for tms_5-2 and tms_40-10 at their config batch sizes, in fp32 and
with bf16 autocast. Each measurement runs in its own process so that peak RSS is its own.

    python bench/bench_tms.py                 # step speed, 2 threads
    python bench/bench_tms.py --threads 1
    python bench/bench_tms.py --end-to-end    # also: nothing -> finished tms_5-2 (target training included)

Reference: the research code runs tms_5-2 (batch 4096) at about 33 steps/s on 2 CPU threads of this
machine kind.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MEASURE = r"""
import json, resource, sys, time, torch
from spd.config_loading import load_config
from spd.run import build_component_model, resolve_device
from spd.train import Trainer
experiment, bf16, threads, n_steps = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
config = load_config(experiment, [f"autocast_bf16={bf16}"])
device = resolve_device(config.device)
model, task, _ = build_component_model(config, device)
trainer = Trainer(config, model, task, device)
for step in range(10):
    trainer.train_step(step)
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
started = time.perf_counter()
for step in range(n_steps):
    trainer.train_step(step)
if device.type == "cuda":
    torch.cuda.synchronize()
elapsed = time.perf_counter() - started
peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print(json.dumps({"steps_per_s": n_steps / elapsed, "peak_mib": peak / 2**20, "device": device.type}))
"""


def measure(experiment: str, bf16: bool, threads: int, n_steps: int, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, experiment, "1" if bf16 else "0", str(threads), str(n_steps)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end(env: dict[str, str], threads: int) -> float:
    """Seconds from an empty target cache to a finished tms_5-2 decomposition (default config)."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run(
            ["spd-decompose", "tms_5-2", "--out", out, "--quiet"],
            check=True, env=env | {"OMP_NUM_THREADS": str(threads)}, capture_output=True,
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"SPD_CACHE_DIR": cache}
        print(f"{'experiment':<12} {'precision':<10} {'steps/s':>9} {'peak MiB':>9}  device")
        for experiment in ("tms_5-2", "tms_40-10"):
            for bf16 in (False, True):
                result = measure(experiment, bf16, args.threads, args.steps, env)
                precision = "bf16-auto" if bf16 else "fp32"
                print(f"{experiment:<12} {precision:<10} {result['steps_per_s']:>9.1f} "
                      f"{result['peak_mib']:>9.0f}  {result['device']}", flush=True)
    if args.end_to_end:
        with tempfile.TemporaryDirectory() as cache:
            seconds = end_to_end(os.environ | {"SPD_CACHE_DIR": cache}, args.threads)
            print(f"nothing -> finished tms_5-2 (target training included): {seconds:.0f} s")


if __name__ == "__main__":
    main()
