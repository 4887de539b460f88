"""A diverged run stops at once, says where and why, and leaves its last finite checkpoint."""

import math

import pytest
import torch
from torch._dynamo.utils import counters

from spd.config_loading import load_config, validate_config
from spd.distributed import DataParallel
from spd.divergence import DivergenceGuard, TrainingDiverged
from spd.run import build_component_model, run_decomposition
from spd.run_dir import RunDir
from spd.train import Trainer
from tests.conftest import tms_config_dict

SAVE_FREQ = 2


def assert_last_checkpoint_finite(run: RunDir, diverged_at: int) -> dict:
    state = torch.load(run.checkpoint, weights_only=False)
    assert 0 < state["next_step"] <= diverged_at
    for group in ("components", "ci_fns"):
        for name, value in state["model"][group].items():
            assert torch.isfinite(value).all(), name
    return state


def test_non_finite_loss_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path):
    # lr ramps up to 1e6 over 20 steps: the loss overflows a few steps in, after a save.
    config = validate_config(
        tms_config_dict(lr=1e6, steps=40, lr_schedule={"warmup_frac": 0.5}, save_freq=SAVE_FREQ)
    )
    with pytest.raises(TrainingDiverged) as raised:
        run_decomposition(config, tmp_path, progress=False)
    step, message = raised.value.step, str(raised.value)
    assert message.startswith(f"training diverged at step {step}: loss/total=")
    assert message.endswith("(lower lr, or set grad_clip_norm)")
    run = RunDir(tmp_path)
    assert not run.summary.exists()
    state = assert_last_checkpoint_finite(run, step)
    assert state["next_step"] == step // SAVE_FREQ * SAVE_FREQ  # the last save before
    assert f"ERROR spd.divergence: {message}" in run.log.read_text()


def test_non_finite_parameters_after_a_finite_loss_are_not_saved(tmp_path, monkeypatch):
    # Stands in for non-finite gradients: the step's loss is finite, its update is not.
    real_step = Trainer.train_step

    def poisoned_before_a_save(self: Trainer, step: int) -> dict[str, torch.Tensor]:
        terms = real_step(self, step)
        if step == 2 * SAVE_FREQ - 1:
            with torch.no_grad():
                self.params[0].fill_(math.nan)
        return terms

    monkeypatch.setattr(Trainer, "train_step", poisoned_before_a_save)
    config = validate_config(tms_config_dict(steps=20, save_freq=SAVE_FREQ))
    with pytest.raises(TrainingDiverged, match="the loss was finite") as raised:
        run_decomposition(config, tmp_path, progress=False)
    assert raised.value.step == 2 * SAVE_FREQ - 1
    assert "non-finite parameters: components." in str(raised.value)
    state = assert_last_checkpoint_finite(RunDir(tmp_path), raised.value.step)
    assert state["next_step"] == SAVE_FREQ


def test_compiled_step_diverges_without_recompiling():
    # The registry graph of test_compile_step (batch 512), so torch's compile cache has it.
    config = load_config("tms_5-2", ["batch_size=512", "compile_step=true", "device=cpu", "lr=1e6"])
    model, task, _ = build_component_model(config, torch.device("cpu"), progress=False)
    trainer = Trainer(config, model, task, DataParallel(device=torch.device("cpu")))
    trainer.train_step(0)  # compiles the step
    graphs = counters["stats"]["unique_graphs"]
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: loss/total="):
        for step in range(1, 20):
            trainer.train_step(step)
    assert counters["stats"]["unique_graphs"] == graphs


def test_device_record_names_the_first_bad_step_and_the_terms_where_detected():
    guard = DivergenceGuard(torch.device("cpu"), grad_clipped=True)
    guard.check_every_step = False  # as on a GPU: read only at `check`
    for step, (total, recon) in enumerate([(1.0, 0.5), (math.inf, math.inf), (math.nan, math.nan)]):
        guard.observe(step, {"loss/total": torch.tensor(total), "loss/recon": torch.tensor(recon)})
    with pytest.raises(TrainingDiverged) as raised:
        guard.check()
    assert raised.value.step == 1
    assert str(raised.value) == (
        "training diverged at step 1 (detected at step 2): loss/total=nan, loss/recon=nan (lower lr)"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_observing_a_step_does_not_sync_the_gpu():
    guard = DivergenceGuard(torch.device("cuda"), grad_clipped=False)
    totals = [torch.tensor(v, device="cuda") for v in (1.0, math.nan, 2.0)]
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step, total in enumerate(totals):
            guard.observe(step, {"loss/total": total})
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(TrainingDiverged, match=r"at step 1 \(detected at step 2\)"):
        guard.check()


def test_diverged_faithfulness_warmup_is_named_as_such(tmp_path):
    config = validate_config(
        tms_config_dict(faithfulness_warmup={"steps": 20, "lr": 1e30}, steps=4)
    )
    with pytest.raises(TrainingDiverged, match=r"the faithfulness warm-up diverged: final loss (nan|inf) \(lower faithfulness_warmup.lr\)"):
        run_decomposition(config, tmp_path, progress=False)
    assert not RunDir(tmp_path).checkpoint.exists()
