"""A tiny GPT-2 decomposed data parallel (`spd-decompose --nproc 2`, gloo) computes what one process
computes: each rank runs the target and the SPD losses on its own sequences of the global batch.
A streamed dataset is split between the ranks instead: each reads its own share.

Tolerance: KL divergences between nearly equal distributions (about 1e-3 here) and the CE ratios
built on them amplify the rounding differences of the summed gradients: after 10 steps at lr 1e-2
the largest relative difference measured was 7e-5 (eval ce_unrecovered), parameters within 3e-7."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from spd.config import Config
from spd.config_loading import ConfigError
from spd.distributed import DataParallel
from spd.experiments.lm.data import StreamPosition, make_sampler
from spd.run import build_component_model, run_decomposition
from spd.run_dir import RunDir
from spd.tensor_files import load_tensor_file
from spd.train import Trainer
from tests.spd.data_parallel_runs import (
    assert_same_run,
    decompose,
    rank_pid,
    trained_parameters,
    wait_for,
)

PATTERNS = [["transformer.h.*.mlp.c_*", 12], ["transformer.h.*.attn.c_*", 6], ["transformer.wte", 8]]


@pytest.mark.slow  # the default suite checks the sequence-model split in tests/spd/test_distributed.py
def test_two_ranks_decompose_a_language_model_as_one_process_does(lm_config, tmp_path):
    config = lm_config("gpt2", PATTERNS, steps=10, eval_freq=5)
    config_file = tmp_path / "gpt2.yaml"
    config_file.write_text(yaml.safe_dump(config))
    run_decomposition(Config.model_validate(config), tmp_path / "one", progress=False)
    result = decompose(
        [str(config_file), "--nproc", "2", "--out", str(tmp_path / "two"), "--quiet"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(tmp_path / "one", tmp_path / "two", rel=1e-3)


def streamed_config(lm_config, **overrides: Any) -> dict[str, Any]:
    config = lm_config("llama", [["model.layers.*.mlp.down_proj", 6]], **overrides)
    config["task_config"]["dataset"] |= {"streaming": True, "shuffle_buffer": 16}
    return config


def trainer_for(config: Config, dp: DataParallel) -> Trainer:
    model, task, _ = build_component_model(config, torch.device("cpu"), progress=False)
    return Trainer(config, model, task, dp)


def test_two_ranks_split_a_stream_and_each_resumes_from_its_own_place(lm_config, tokenizer, tmp_path):
    """`--nproc 2` on a streamed dataset: each rank reads only its own share of the stream (half
    of each global batch from it), and the checkpoint keeps each rank's place in its share; only
    two processes can resume it, each from its own place."""
    # 8 rows of 16 tokens per rank and step: the ranks' documents differ in length, so after 6
    # steps they are at different places in their shares (23 and 21 documents).
    raw = streamed_config(lm_config, steps=6, save_freq=3, eval_freq=6, batch_size=16)
    config = Config.model_validate(raw)
    config_file = tmp_path / "streamed.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    result = decompose([str(config_file), "--nproc", "2", "--out", str(tmp_path / "two"), "--quiet"])
    assert result.returncode == 0, result.stderr[-3000:]

    checkpoint = load_tensor_file(RunDir(tmp_path / "two").checkpoint)
    states = checkpoint["data_generator"]
    assert states.shape[0] == 2
    dataset = config.task_config.dataset
    stream = make_sampler(dataset, "train", tokenizer, 16, len(tokenizer), torch.device("cpu"))
    places = []
    for rank in range(2):
        share, generator = stream.shard(rank, 2), torch.Generator().manual_seed(config.seed)
        for _ in range(6):
            share(8, generator)
        saved = torch.Generator()
        saved.set_state(states[rank].clone())  # not a view: see Trainer.own_data_state
        places.append(StreamPosition.of(saved))
        assert places[rank] == StreamPosition.of(generator), rank
    assert places[0] != places[1]

    second = trainer_for(config, DataParallel(torch.device("cpu"), rank=1, world_size=2))
    second.load_state_dict(checkpoint)
    assert torch.equal(second.data_generator.get_state(), states[1])
    with pytest.raises(ConfigError, match="taken by 2 processes, .* resume it with --nproc 2"):
        trainer_for(config, DataParallel(torch.device("cpu"))).load_state_dict(checkpoint)
    one_process = checkpoint | {"data_generator": torch.Generator().get_state()}
    with pytest.raises(ConfigError, match="taken by one process .* resume it in one process"):
        second.load_state_dict(one_process)


@pytest.mark.slow  # about 40 s: three two-rank runs
def test_a_streamed_run_killed_in_one_rank_resumes_to_the_same_result(lm_config, tmp_path):
    """Rank 1 of a streamed two-rank run is killed after the first checkpoint; the same command
    resumes each rank from its own place in its share and ends bit-identical to an
    uninterrupted two-rank run."""
    raw = streamed_config(lm_config, steps=200, save_freq=10, eval_freq=100, log_freq=10,
                          batch_size=16)
    config_file = tmp_path / "streamed.yaml"
    config_file.write_text(yaml.safe_dump(raw))

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "spd.cli", str(config_file), "--nproc", "2", "--out",
                str(out), "--quiet"]  # fmt: skip

    killed = tmp_path / "killed"
    launcher = subprocess.Popen(command(killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
    try:
        wait_for(lambda: RunDir(killed).checkpoint.exists(), "the first checkpoint")
        os.kill(wait_for(lambda: rank_pid(launcher, 1), "rank 1's process"), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 1, stderr[-3000:]
    assert not RunDir(killed).summary.exists()
    # The ranks stopped at different places in their shares: resuming both from one would show.
    places = []
    for state in load_tensor_file(RunDir(killed).checkpoint)["data_generator"]:
        generator = torch.Generator()
        generator.set_state(state.clone())
        places.append(StreamPosition.of(generator))
    assert places[0] != places[1], places
    resumed = subprocess.run(command(killed), check=False, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stderr
    whole = subprocess.run(command(tmp_path / "whole"), check=False, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-3000:]
    params_resumed = trained_parameters(killed)
    for name, value in trained_parameters(tmp_path / "whole").items():
        assert torch.equal(params_resumed[name], value), name
