"""Data parallel on one machine: steps/s of one process with T threads against N processes with
T/N threads each (spd.distributed, gloo on the CPU, NCCL on GPUs), and the share of a step spent in
the all-reduce that sums the ranks' gradients.

    python bench/bench_data_parallel.py                              # resid_mlp1 and resid_mlp3
    python bench/bench_data_parallel.py --experiments tms_40-10 --steps 200

Each configuration runs in its own processes (a rank is started by torch.distributed.run, as
`spd-decompose --nproc` starts them), on a random target (speed does not depend on the weights),
with the experiment's own config (batch size, compile settings). Warm-up steps, which include any
compile, are not timed. With CUDA devices, the ranks run on cuda:0..N-1 (NCCL), N at most the
number of devices.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

RANK_SCRIPT = "bench_data_parallel_rank"


def run_rank(experiment: str, warmup: int, steps: int, out: str) -> None:
    """One rank's measurement (run under torchrun, or alone): steps/s and all-reduce time."""
    from spd.config_loading import load_config
    from spd.distributed import data_parallel
    from spd.experiments.resid_mlp.model import ResidMLP
    from spd.experiments.tms.model import TMSModel
    from spd.run import build_component_model
    from spd.train import Trainer

    config = load_config(experiment, [])
    target_class = {"tms": TMSModel, "resid_mlp": ResidMLP}[config.task_config.task_name]
    target_file = os.path.join(tempfile.mkdtemp(), "target.pt")
    torch.manual_seed(0)
    torch.save(target_class(config.task_config.target).state_dict(), target_file)
    config = config.model_copy(update={"pretrained_model_path": target_file})
    with data_parallel(config.device) as dp:
        model, task, _ = build_component_model(config, dp.device, progress=False)
        trainer = Trainer(config, model, task, dp)
        reduce_s = 0.0
        all_reduce_sum = dp.all_reduce_sum

        def timed_all_reduce(tensor: torch.Tensor) -> None:
            nonlocal reduce_s
            started = time.perf_counter()
            all_reduce_sum(tensor)
            reduce_s += time.perf_counter() - started

        object.__setattr__(dp, "all_reduce_sum", timed_all_reduce)
        for step in range(warmup):
            trainer.train_step(step)
        reduce_s = 0.0
        synchronize(dp.device)
        started = time.perf_counter()
        for step in range(warmup, warmup + steps):
            trainer.train_step(step)
        synchronize(dp.device)
        elapsed = time.perf_counter() - started
        if dp.is_main:
            with open(out, "w") as f:
                json.dump({"steps_per_s": steps / elapsed, "reduce_share": reduce_s / elapsed,
                           "threads": torch.get_num_threads(), "device": dp.device.type}, f)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(experiment: str, nproc: int, threads: int, warmup: int, steps: int) -> dict:
    out = tempfile.mktemp(suffix=".json")
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    this = os.path.abspath(__file__)
    args = [RANK_SCRIPT, experiment, str(warmup), str(steps), out]
    if nproc == 1:
        command = [sys.executable, this, *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc}", this, *args]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", default="resid_mlp1,resid_mlp3")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads in all (default: this machine's cores)")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    gpus = torch.cuda.device_count()
    if gpus:
        print(f"CUDA: {gpus} device(s); ranks use one each (NCCL)")
    per_rank = max(1, args.threads // args.nproc)
    print(f"{'experiment':<12} {'layout':<22} {'steps/s':>8} {'all-reduce share':>17}")
    for experiment in args.experiments.split(","):
        ranks = min(args.nproc, gpus) if gpus else args.nproc
        for nproc, threads in [(1, args.threads), (ranks, per_rank)]:
            result = measure(experiment, nproc, threads, args.warmup, args.steps)
            label = f"{nproc} proc x {threads} thread" + ("s" if threads > 1 else "")
            share = f"{result['reduce_share']:.1%}" if nproc > 1 else "-"
            print(f"{experiment:<12} {label:<22} {result['steps_per_s']:>8.2f} {share:>17}",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == RANK_SCRIPT:
        run_rank(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()
