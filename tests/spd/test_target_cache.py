"""Processes that need the same uncached target train it once: a second one waits for the
first and loads what it published."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spd.config_loading import load_config
from spd.target_cache import cached_target_dir, publish, training_lock

WAITER = """
import logging, sys, torch
from spd.config_loading import load_config
from spd.target_cache import load_or_train_target
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
def train():
    print("TRAINED", flush=True)
    return {"w": torch.ones(1)}
state = load_or_train_target("tms", load_config("tms_5-2").task_config.target, train)
print("GOT", float(state["w"]), flush=True)
"""


def test_a_process_waits_for_the_one_training_the_same_target_and_does_not_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPD_CACHE_DIR", str(tmp_path))  # here and in the waiter
    target_config = load_config("tms_5-2").task_config.target
    target_dir = cached_target_dir("tms", target_config)
    with training_lock(target_dir):  # this test "trains" the target
        waiter = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
        assert waiter.stdout is not None
        for line in waiter.stdout:
            if line.startswith("Waiting for another process that is training the target"):
                break
        else:
            raise AssertionError("the waiter did not wait")
        publish(target_dir, {"w": torch.full((1,), 7.0)}, target_config)
    rest = waiter.stdout.read()
    assert waiter.wait() == 0
    assert "TRAINED" not in rest
    assert "trained meanwhile by another process" in rest
    assert "GOT 7.0" in rest
