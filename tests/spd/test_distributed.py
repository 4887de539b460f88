"""Data parallel (spd.distributed, spd.distributed_launch): `spd-decompose --nproc 2` runs two real
gloo processes on the CPU, and must compute what one process computes (tolerance: see
tests/spd/data_parallel_runs.py)."""

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
import torch

from spd.batch_split import DataParallelError
from spd.component_model import ComponentModel
from spd.config_loading import load_config
from spd.distributed import DataParallel
from spd.distributed_launch import check_nproc
from spd.losses import compute_losses, draw_loss_noise
from spd.run import build_component_model, run_decomposition
from spd.step_batch import run_target
from spd.train import Trainer
from tests.spd.data_parallel_runs import (
    TOLERANCE,
    assert_same_run,
    decompose,
    rank_pid,
    set_flags,
    trained_parameters,
    wait_for,
)

CORES = len(os.sched_getaffinity(0))
# On the CPU (gloo) also where CUDA is present: the tests compare processes, not devices.
SHORT_RUN = ["steps=20", "log_freq=1", "eval_freq=10", "image_freq=null", "compile_step=false",
             "device=cpu"]
EXPERIMENTS = {
    "tms_5-2": [],
    # resid_mlp1's architecture; a briefly trained target is enough to compare two runs.
    "resid_mlp1": ["task_config.target.train_steps=100", "batch_size=256"],
}


@pytest.mark.parametrize(
    "experiment",
    # resid_mlp1's step splits as tms_5-2's does (compacted rows); it runs with the long tests
    [pytest.param(name, marks=[pytest.mark.slow] if name != "tms_5-2" else []) for name in EXPERIMENTS],
)
def test_two_ranks_compute_what_one_process_computes(experiment, tmp_path):
    overrides = SHORT_RUN + EXPERIMENTS[experiment]
    single = tmp_path / "one"
    run_decomposition(load_config(experiment, overrides), single, progress=False)
    ranks = tmp_path / "two"
    result = decompose([experiment, "--nproc", "2", "--out", str(ranks), "--quiet",
                        *set_flags(overrides)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Data parallel: rank 0 of 2" in result.stderr
    assert f"Run directory: {ranks}" in result.stdout  # printed once, by rank 0
    assert result.stdout.count("Run directory:") == 1
    assert_same_run(single, ranks)
    modules_one = json.loads((single / "summary.json").read_text())["modules"]
    modules_two = json.loads((ranks / "summary.json").read_text())["modules"]
    assert modules_two.keys() == modules_one.keys()
    for path, module in modules_one.items():
        numbers = {k: v for k, v in module.items() if k != "pattern"}
        assert {k: modules_two[path][k] for k in numbers} == pytest.approx(numbers, rel=TOLERANCE)



@pytest.mark.slow  # a cold compile in each of three processes: about 50 s here
def test_two_ranks_with_a_compiled_step_compute_what_one_process_computes(tmp_path):
    """compile_step under data parallel: the all-reduce runs after the compiled step, and backward
    accumulates into the gradients' views of the all-reduce buffer (spd.train)."""
    overrides = [o for o in SHORT_RUN if o != "compile_step=false"] + ["compile_step=true"]
    run_decomposition(load_config("tms_5-2", overrides), tmp_path / "one", progress=False)
    result = decompose(["tms_5-2", "--nproc", "2", "--out", str(tmp_path / "two"), "--quiet",
                        *set_flags(overrides)])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(tmp_path / "one", tmp_path / "two")

def test_a_killed_rank_stops_the_run_and_a_rerun_resumes_to_the_same_result(tmp_path):
    """Rank 1 is killed right after the first checkpoint, with most of the run still to go: the
    launcher stops rank 0 and says so in one line; the same command resumes from the checkpoint
    and ends bit-identical to an uninterrupted two-rank run."""
    overrides = set_flags(["steps=300", "save_freq=20", "compile_step=false", "image_freq=null",
                           "eval_freq=100", "device=cpu"])
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "spd.cli", "tms_5-2", "--nproc", "2", "--out", str(killed),
               "--quiet", *overrides]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (killed / "checkpoint.pt").exists(), "the first checkpoint")
        os.kill(wait_for(lambda: rank_pid(launcher, 1), "rank 1's process"), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 1, stderr[-3000:]
    error_lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert error_lines == [(
        "Error: rank 1 of 2 stopped (killed by SIGKILL), and the other ranks with it; run the "
        "same command again to resume from the last checkpoint"
    )]
    assert "Traceback" not in stderr
    assert not (killed / "summary.json").exists()
    resumed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stderr
    uninterrupted = tmp_path / "uninterrupted"
    result = decompose(["tms_5-2", "--nproc", "2", "--out", str(uninterrupted), "--quiet",
                        *overrides])
    assert result.returncode == 0, result.stderr[-3000:]
    params_resumed, params_whole = trained_parameters(killed), trained_parameters(uninterrupted)
    for name, value in params_whole.items():
        assert torch.equal(params_resumed[name], value), name


@pytest.mark.parametrize(
    ("overrides", "nproc", "message"),
    [
        ([], CORES + 1, f"--nproc {CORES + 1} is more than this machine's {CORES} CPU cores"),
        ([], 0, "--nproc 0: give at least 1 process"),
        (["batch_size=1001"], 2,
         "batch_size 1001 (the global batch) does not split evenly over 2 processes"),
        (["device=cuda:1"], 2, "device 'cuda:1' with several processes"),
    ],
)
def test_data_parallel_settings_that_cannot_work_are_refused(overrides, nproc, message):
    config = load_config("tms_5-2", ["device=cpu", *overrides])
    with pytest.raises(DataParallelError, match=re.escape(message)):
        check_nproc(config, nproc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "2", "--set", "batch_size=1001"],
         "batch_size 1001 (the global batch) does not split evenly over 2 processes"),
        (["--nproc", "2", "--set", "steps=-1"], "steps"),
    ],
)
def test_data_parallel_input_errors_stop_before_any_process_starts(args, message, tmp_path):
    out = tmp_path / "run"
    result = decompose(["tms_5-2", "--out", str(out), "--set", "device=cpu", *args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def test_a_run_directory_error_is_printed_once(tmp_path):
    """Rank 0 finds that the run directory holds another config's run; every rank stops, and
    the error is printed once."""
    out = tmp_path / "run"
    run_decomposition(load_config("tms_5-2", [*SHORT_RUN, "steps=2"]), out, progress=False)
    other = decompose(["tms_5-2", "--nproc", "2", "--out", str(out), "--quiet",
                       *set_flags([*SHORT_RUN, "steps=2", "seed=7"])])
    assert other.returncode == 2, other.stderr[-3000:]
    errors = [line for line in other.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "holds a run of another config" in errors[0], other.stderr
    assert "Traceback" not in other.stderr


def rank_losses(model: ComponentModel, batch: torch.Tensor, part_of: Any, config: Any,
                independent_rows: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    data = run_target(model, batch, independent_rows, part_of)
    noise = draw_loss_noise(model, data, config, generator)
    ci = model.causal_importances(data.inputs, data.nonzero_rows)
    total, terms = compute_losses(model, data, ci, config, 1.0, noise)
    return total * data.share, {name: value * data.share for name, value in terms.items()}


@pytest.mark.parametrize("world_size", [2, 3, 7])
@pytest.mark.parametrize(
    ("batch_kind", "independent_rows"),
    [("sparse", True), ("all zero", True), ("sparse", False)],
)
def test_the_parts_of_a_step_add_up_to_the_whole_step(world_size, batch_kind, independent_rows):
    """Without processes: the shares of each rank's losses sum to one process's losses, with
    rows compacted (toy models) or not (sequence models), also when a compacted batch has fewer
    rows than ranks (the ranks left without rows add 0)."""
    config = load_config("tms_5-2", ["batch_size=64"])
    model, task, _ = build_component_model(config, torch.device("cpu"), progress=False)
    generator = torch.Generator().manual_seed(0)
    batch = task.sample_batch(64, generator)
    if batch_kind == "all zero":
        batch = torch.zeros_like(batch)  # compacts to a single row
    whole_total, whole_terms = rank_losses(model, batch, None, config, independent_rows)
    parts = [
        rank_losses(model, batch, DataParallel(torch.device("cpu"), r, world_size).rows, config,
                    independent_rows)
        for r in range(world_size)
    ]
    torch.testing.assert_close(sum(total for total, _ in parts), whole_total)
    for name, value in whole_terms.items():
        torch.testing.assert_close(sum(terms[name] for _, terms in parts), value)


@pytest.mark.parametrize("n_rows", [0, 1, 5, 64, 65])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_take_disjoint_contiguous_parts_that_cover_every_row(n_rows, world_size):
    parts = [DataParallel(torch.device("cpu"), r, world_size).rows(n_rows) for r in range(world_size)]
    covered = [i for part in parts for i in range(n_rows)[part]]
    assert covered == list(range(n_rows))
    sizes = [len(range(n_rows)[part]) for part in parts]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.slow  # the default suite resumes a 2-rank run after a kill (above)
def test_a_checkpoint_of_one_process_resumes_in_two(tmp_path, monkeypatch):
    """Every rank holds the same state, so a checkpoint resumes with another number of processes:
    one process stopped at step 10, resumed by two, ends as one uninterrupted process does
    (within the data-parallel tolerance)."""
    overrides = [*SHORT_RUN, "save_freq=10"]
    config = load_config("tms_5-2", overrides)
    run_decomposition(config, tmp_path / "whole", progress=False)
    real_step = Trainer.train_step

    def stopped_at_10(self: Trainer, step: int) -> dict[str, torch.Tensor]:
        if step == 10:
            raise KeyboardInterrupt("stopped")
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "train_step", stopped_at_10)
    with pytest.raises(KeyboardInterrupt):
        run_decomposition(config, tmp_path / "resumed", progress=False)
    result = decompose(["tms_5-2", "--nproc", "2", "--out", str(tmp_path / "resumed"), "--quiet",
                        *set_flags(overrides)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming" in result.stderr and "from step 10" in result.stderr
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")
