"""Speed of the SPD training step on the TMS experiments, and the time to a finished tms_5-2 run.

Prints steps/s and peak memory for tms_5-2 and tms_40-10 at their config batch sizes, eager and
with `compile_step` (one compiled graph per step), in fp32 and with bf16 autocast, and the warm-up
(first steps, the compile included). Each measurement runs in its own process so that peak RSS is
its own. Targets are trained once into SPD_CACHE_DIR (a temporary directory when unset).

    python bench/bench_tms.py                 # step speed, 2 threads
    python bench/bench_tms.py --threads 1 --experiments tms_5-2 --modes compiled
    python bench/bench_tms.py --end-to-end    # also: nothing -> finished tms_5-2 (target training included)
    python bench/bench_tms.py --startup       # also: launch -> first training step of tms_5-2

Reference: the research code runs tms_5-2 (batch 4096) at about 33 steps/s on 2 CPU threads of this
machine kind.
"""

import argparse
import json
import math
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


def startup(env: dict[str, str], threads: int, compile_step: bool) -> dict[str, float]:
    """Seconds from launching `spd-decompose tms_5-2` (target cached) to its first training step
    done, read off progress.json (reported after every step here), and to the process's end."""
    with tempfile.TemporaryDirectory() as out:
        progress = os.path.join(out, "progress.json")
        started = time.perf_counter()
        process = subprocess.Popen(
            ["spd-decompose", "tms_5-2", "--out", out, "--quiet", "--set", "steps=20",
             "--set", "progress_interval_s=0", "--set", f"compile_step={compile_step}"],
            env=env | {"OMP_NUM_THREADS": str(threads)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        first_step_s = None
        while process.poll() is None:
            if first_step_s is None and os.path.exists(progress):
                try:
                    with open(progress) as file:
                        step = json.load(file)["step"]
                    if step >= 1:
                        first_step_s = time.perf_counter() - started
                except (OSError, ValueError):
                    pass  # replaced while read: the next poll reads it whole
            time.sleep(0.01)
        if process.returncode != 0:
            raise SystemExit(f"spd-decompose tms_5-2 exited with {process.returncode}")
        return {"first_step_s": first_step_s or math.nan, "total_s": time.perf_counter() - started}


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
    parser.add_argument(
        "--startup", action="store_true",
        help="launch -> first training step of tms_5-2 (20 steps, target cached), eager and "
        "compiled; the compiled one twice, the second with torch's compile cache warm",
    )
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
    if args.startup:
        with tempfile.TemporaryDirectory() as cache:
            # A fresh compile cache: the first compiled run is cold, the second warm.
            env = os.environ | {
                "SPD_CACHE_DIR": cache, "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor")
            }
            startup(env, args.threads, False)  # trains and caches the target
            for label, compiled in [("eager", False), ("compiled, cold", True), ("compiled, warm", True)]:
                r = startup(env, args.threads, compiled)
                print(f"launch -> first step of tms_5-2, {label}: {r['first_step_s']:.1f} s "
                      f"(whole 20-step run {r['total_s']:.1f} s)", flush=True)
    if args.end_to_end:
        with tempfile.TemporaryDirectory() as cache:
            seconds = end_to_end(os.environ | {"SPD_CACHE_DIR": cache}, args.threads)
            print(f"nothing -> finished tms_5-2 (target training included): {seconds:.0f} s")


if __name__ == "__main__":
    main()
