"""Speed and peak memory of the SPD training step on the residual-MLP experiments.

For resid_mlp1 and resid_mlp3 (and resid_mlp2 on request) at their config batch size (2048), in
fp32 and with bf16 autocast, it times four implementations of the step, which give the same losses:
    reference  plain autograd math (PerComponentMLP.reference_forward), as in the research code
    fast       memory-lean custom autograd functions, eager (the default)
    compiled   the same, fused by torch.compile (`compile: true`, resid_mlp2/3's setting)
    step       the whole step as one compiled graph (`compile_step: true`, plain math inside;
               resid_mlp1's setting)
Every path keeps the residual stream factored (spd.low_rank). Each row also prints the matrix
products' GFLOP per step and `bound ms`, the time they take at least at this machine's fp32 rate
(CPU_GFLOPS_PER_THREAD per thread): what is left of a step beyond it is elementwise work, mostly
the CI functions. Each measurement runs in its own process, so that peak RSS is its own. The targets are random (not
trained): speed does not depend on the weights. resid_mlp3 runs with C = 500 in all six modules,
the research code's setting, unless --config-c is given.

    python bench/bench_resid_mlp.py                        # 2 threads
    python bench/bench_resid_mlp.py --threads 1 --experiments resid_mlp1 --paths fast,compiled
    python bench/bench_resid_mlp.py --experiments resid_mlp1 --precisions fp32 --matmuls

Reference (the issue): the research code needs about 28 s per step and 8 GB for resid_mlp3 and runs
resid_mlp1 at about 8.9 steps/s, on 2 CPU threads of this machine kind.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

MEASURE = r"""
import json, resource, sys, time, torch
MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
from spd.config_loading import load_config
from spd.experiments.resid_mlp.model import ResidMLP
from spd.distributed import DataParallel, resolve_device
from spd.run import build_component_model
from spd.train import Trainer

experiment, path, bf16, threads, warmup, n_steps, research_c, target_file = sys.argv[1:9]
count_matmuls = sys.argv[9] == "1"
sampler = sys.argv[10]
torch.set_num_threads(int(threads))
overrides = [f"autocast_bf16={bf16 == '1'}", f"compile={path == 'compiled'}", f"compile_step={path == 'step'}",
             f"task_config.sampler={sampler}"]
if research_c == "1":
    overrides.append("target_module_patterns=[[layers.*.mlp_in, 500], [layers.*.mlp_out, 500]]")
config = load_config(experiment, overrides)
torch.manual_seed(0)
torch.save(ResidMLP(config.task_config.target).state_dict(), target_file)
config = config.model_copy(update={"pretrained_model_path": target_file})
device = resolve_device(config.device)
model, task, _ = build_component_model(config, device, progress=False)
if path == "reference":
    for ci_fn in model.ci_fns.values():
        ci_fn.forward = ci_fn.reference_forward
trainer = Trainer(config, model, task, DataParallel(device=device))
started = time.perf_counter()
for step in range(int(warmup)):
    trainer.train_step(step)
warmup_s = time.perf_counter() - started
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
started = time.perf_counter()
for step in range(int(warmup), int(warmup) + int(n_steps)):
    terms = trainer.train_step(step)
if device.type == "cuda":
    torch.cuda.synchronize()
elapsed = time.perf_counter() - started
peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
# After the timing, a few more steps under the profiler (it slows them down): the matrix products'
# FLOPs per step, and with --matmuls the CPU time they took.
from torch.profiler import profile
n_profiled = min(int(n_steps), 20)
first = int(warmup) + int(n_steps)
with profile(with_flops=True) as prof:
    for step in range(first, first + n_profiled):
        trainer.train_step(step)
matmuls = [e for e in prof.key_averages() if e.key in MATMULS]
matmul_flops = sum(e.flops for e in matmuls) / n_profiled
matmul_ms = sum(e.self_cpu_time_total for e in matmuls) / 1e3 / n_profiled if count_matmuls else None
print(json.dumps({
    "steps_per_s": int(n_steps) / elapsed, "peak_mib": peak / 2**20, "device": device.type,
    "warmup_s": warmup_s, "loss": float(terms["loss/total"]), "matmul_ms": matmul_ms,
    "matmul_gflop": matmul_flops / 1e9,
}))
"""

CPU_GFLOPS_PER_THREAD = 92
"""fp32 matmul throughput of one thread of the development machine: `bound ms` is the step's
matmul FLOPs at that rate, the time no implementation of the same products can beat there (on a
GPU the column means nothing)."""

STEPS = {"resid_mlp3": (1, 2)}
"""(warm-up steps, timed steps) per experiment; the others take (5, 200): on this noisy VM, fewer
timed steps move by ±20 % from run to run."""


def measure(
    experiment: str,
    path: str,
    bf16: bool,
    threads: int,
    research_c: bool,
    count_matmuls: bool,
    sampler: str,
    env: dict[str, str],
) -> dict:
    warmup, n_steps = STEPS.get(experiment, (5, 200))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            experiment,
            path,
            "1" if bf16 else "0",
            str(threads),
            str(warmup),
            str(n_steps),
            "1" if research_c else "0",
            os.path.join(tmp, "target.pt"),
            "1" if count_matmuls else "0",
            sampler,
        ]
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, *args],
            check=True,
            capture_output=True,
            text=True,
            env=env | {"OMP_NUM_THREADS": str(threads)},
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--experiments", default="resid_mlp1,resid_mlp3")
    parser.add_argument("--paths", default="reference,fast,compiled,step")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument(
        "--config-c",
        action="store_true",
        help="resid_mlp3 with its config's per-module C instead of C = 500 everywhere",
    )
    parser.add_argument(
        "--matmuls",
        action="store_true",
        help="also profile the CPU time per step spent in matrix multiplications (on CPU): the "
        "part of the step that fusing and skipping work cannot shrink",
    )
    parser.add_argument(
        "--samplers",
        default="every_entry",
        help="comma-separated task_config.sampler values: every_entry (the configs' default) "
        "and/or active_entries (the same data distribution from fewer random numbers; other "
        "batches, so other losses)",
    )
    args = parser.parse_args()
    env = dict(os.environ)
    print(
        f"{'experiment':<11} {'path':<10} {'precision':<10} {'sampler':<14} {'steps/s':>8} {'s/step':>7} "
        f"{'peak MiB':>9} {'warm-up s':>9} {'loss':>12} {'GFLOP':>6} {'bound ms':>8} "
        f"{'matmul ms':>9}  device"
    )
    for experiment in args.experiments.split(","):
        for precision in args.precisions.split(","):
            for path, sampler in itertools.product(args.paths.split(","), args.samplers.split(",")):
                research_c = experiment == "resid_mlp3" and not args.config_c
                r = measure(
                    experiment, path, precision == "bf16", args.threads, research_c,
                    args.matmuls, sampler, env,
                )
                matmul_ms = "-" if r["matmul_ms"] is None else f"{r['matmul_ms']:.1f}"
                bound_ms = 1e3 * r["matmul_gflop"] / (CPU_GFLOPS_PER_THREAD * args.threads)
                print(
                    f"{experiment:<11} {path:<10} {precision:<10} {sampler:<14} "
                    f"{r['steps_per_s']:>8.2f} "
                    f"{1 / r['steps_per_s']:>7.2f} {r['peak_mib']:>9.0f} {r['warmup_s']:>9.1f} "
                    f"{r['loss']:>12.6g} {r['matmul_gflop']:>6.2f} {bound_ms:>8.1f} "
                    f"{matmul_ms:>9}  {r['device']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
