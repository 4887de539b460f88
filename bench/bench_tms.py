"""Speed of the SPD training step on the TMS experiments, and the time to a finished tms_5-2 run.

Prints steps/s and peak memory for tms_5-2 and tms_40-10 at their config batch sizes, eager and
with `compile_step` (one compiled graph per step), in fp32 and with bf16 autocast, and the warm-up
(first steps, the compile included). Each measurement runs in its own process so that peak RSS is
its own. Targets are trained once into SPD_CACHE_DIR (a temporary directory when unset).

    python bench/bench_tms.py                 # step speed, 2 threads
    python bench/bench_tms.py --threads 1 --experiments tms_5-2 --modes compiled
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
from spd.distributed import DataParallel, resolve_device
from spd.run import build_component_model
from spd.train import Trainer
experiment, bf16, threads, n_steps, compiled = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
torch.set_num_threads(threads)
config = load_config(experiment, [f"autocast_bf16={bf16}", f"compile_step={compiled}"])
device = resolve_device(config.device)
model, task, _ = build_component_model(config, device, progress=False)
trainer = Trainer(config, model, task, DataParallel(device=device))
warmup_started = time.perf_counter()
for step in range(10):
    trainer.train_step(step)
warmup_s = time.perf_counter() - warmup_started
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
print(json.dumps({"steps_per_s": n_steps / elapsed, "peak_mib": peak / 2**20, "device": device.type,
                  "warmup_s": warmup_s}))
"""


def measure(
    experiment: str, bf16: bool, compiled: bool, threads: int, n_steps: int, env: dict[str, str]
) -> dict:
    flags = ["1" if bf16 else "0", str(threads), str(n_steps), "1" if compiled else "0"]
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, experiment, *flags],
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    parser.add_argument("--experiments", default="tms_5-2,tms_40-10")
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"SPD_CACHE_DIR": os.environ.get("SPD_CACHE_DIR", tmp)}
        print(f"{'experiment':<12} {'mode':<9} {'precision':<10} {'steps/s':>9} {'peak MiB':>9} "
              f"{'warm-up s':>9}  device")
        for experiment in args.experiments.split(","):
            for mode in args.modes.split(","):
                for precision in args.precisions.split(","):
                    r = measure(experiment, precision == "bf16", mode == "compiled", args.threads,
                                args.steps, env)
                    print(f"{experiment:<12} {mode:<9} {precision:<10} {r['steps_per_s']:>9.1f} "
                          f"{r['peak_mib']:>9.0f} {r['warmup_s']:>9.1f}  {r['device']}", flush=True)
    if args.end_to_end:
        with tempfile.TemporaryDirectory() as cache:
            seconds = end_to_end(os.environ | {"SPD_CACHE_DIR": cache}, args.threads)
            print(f"nothing -> finished tms_5-2 (target training included): {seconds:.0f} s")


if __name__ == "__main__":
    main()
