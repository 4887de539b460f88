import json
import math
import re
from pathlib import Path

import pytest
import torch
import wandb
import yaml

import spd.run
from spd.config import Config
from spd.config_fingerprint import RunFingerprint, fingerprint_of
from spd.config_loading import ConfigError
from spd.metric_names import FIGURE_PREFIX, TOTAL_LOSS, metric_name_problem
from spd.progress import read_progress
from spd.run import run_decomposition
from spd.run_dir import RunDir
from spd.run_summary import RunSummary
from spd.train import Trainer
from tests.conftest import tms_config_dict
from tests.wandb_records import read_offline_run


def test_run_writes_the_run_directory(tmp_path):
    config = Config.model_validate(tms_config_dict(target_module_patterns=[["linear1", 4], ["linear2", 8]]))
    summary = run_decomposition(config, tmp_path, progress=False)
    run = RunDir(tmp_path)
    assert Config.model_validate(yaml.safe_load(run.config.read_text())) == config
    assert json.loads(run.modules.read_text()) == {
        "linear1": {"pattern": "linear1", "C": 4},
        "linear2": {"pattern": "linear2", "C": 8},
    }
    assert RunSummary.read(run.summary) == summary
    assert summary.status == "completed"
    assert summary.modules["linear2"].C == 8
    assert 0 <= summary.modules["linear1"].alive <= 4
    for key in ("loss/faithfulness", "loss/stochastic_recon", "ci_l0/total", "target_ci_error/total",
                "mmcs/linear1", "ml2r/linear2", "alive/total"):
        assert key in summary.metrics
    # Every metric the run reports is one spd.metric_names predicts for its config, and no other.
    assert all(metric_name_problem(name, config, summary.modules) is None for name in summary.metrics)
    for absent in ("loss/ci_masked_recon", "alive/linear3", "mmcs/total", "kl/unmasked", "recon"):
        assert metric_name_problem(absent, config, summary.modules) is not None, absent
    steps = [json.loads(line)["step"] for line in run.metrics.read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 20
    assert set(summary.figures) == {
        "figures/ci_per_feature.png", "figures/component_norms.png", "figures/loss_curves.png"
    }
    for figure in summary.figures:
        assert (tmp_path / figure).read_bytes().startswith(b"\x89PNG")
    state = torch.load(run.model, weights_only=True)
    assert state["components"]["linear2.V"].shape == (2, 8)
    assert "linear1" in run.log.read_text()


def killed_at(kill_step):
    """Trainer.train_step that raises (as a kill would) when it reaches `kill_step`."""
    real_step = Trainer.train_step

    def train_step(self, step):
        if step == kill_step:
            raise KeyboardInterrupt("killed")
        return real_step(self, step)

    return train_step


def test_completed_run_is_not_run_again(tmp_path, monkeypatch):
    config = Config.model_validate(tms_config_dict(steps=5))
    first = run_decomposition(config, tmp_path, progress=False)
    monkeypatch.setattr(Trainer, "train_step", lambda *a: pytest.fail("trained again"))
    assert run_decomposition(config, tmp_path, progress=False) == first


def test_resumed_run_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    config = Config.model_validate(tms_config_dict(steps=20, save_freq=5, eval_freq=10))
    run_decomposition(config, tmp_path / "whole", progress=False)

    real_step = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", killed_at(13))
    with pytest.raises(KeyboardInterrupt):
        run_decomposition(config, tmp_path / "resumed", progress=False)
    assert torch.load(RunDir(tmp_path / "resumed").checkpoint, weights_only=True)["next_step"] == 10
    monkeypatch.setattr(Trainer, "train_step", real_step)
    run_decomposition(config, tmp_path / "resumed", progress=False)

    whole = torch.load(RunDir(tmp_path / "whole").model, weights_only=True)
    resumed = torch.load(RunDir(tmp_path / "resumed").model, weights_only=True)
    for group in ("components", "ci_fns"):
        for key, value in whole[group].items():
            assert torch.equal(value, resumed[group][key]), key
    assert RunDir(tmp_path / "whole").metrics.read_text() == RunDir(tmp_path / "resumed").metrics.read_text()


def test_no_resume_starts_over(tmp_path):
    config = Config.model_validate(tms_config_dict(steps=5))
    run_decomposition(config, tmp_path, progress=False)
    RunDir(tmp_path).summary.unlink()
    run_decomposition(config, tmp_path, resume=False, progress=False)
    steps = [json.loads(line)["step"] for line in RunDir(tmp_path).metrics.read_text().splitlines()]
    assert steps.count(0) == 2  # one train-loss record and one eval record at step 0, not doubled


def test_user_metrics_and_figures_and_offline_wandb(tmp_path):
    config = Config.model_validate(
        tms_config_dict(
            steps=4,
            log_freq=1,
            eval_freq=2,
            image_freq=2,
            image_on_first_step=True,
            user_metrics=["tests.spd.user_hooks_example:n_modules_metric"],
            user_figures=["tests.spd.user_hooks_example:blank_figure"],
            wandb_project="spd-tests",
            wandb_tags=["tag-a"],
        )
    )
    summary = run_decomposition(config, tmp_path, progress=False)
    wandb.teardown()  # W&B's service writes the run's files in the background: let it finish
    assert summary.metrics["user/n_modules"] == 2
    assert "figures/user_blank.png" in summary.figures
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    (log_file,) = offline.glob("run-*.wandb")
    run = read_offline_run(log_file)
    assert run.tags == ["tag-a"]
    assert {k: v for k, v in run.config.items() if k != "_wandb"} == config.model_dump(mode="json")

    # The figures at each image_freq evaluation (0, 2) and the final ones (4), as PNG media.
    figure_keys = {FIGURE_PREFIX + Path(f).stem for f in summary.figures}
    assert "figures/user_blank" in figure_keys
    for step in (0, 2, 4):
        images = {k: v for k, v in run.history[step].items() if k.startswith(FIGURE_PREFIX)}
        assert images.keys() == figure_keys, step
        for image in images.values():
            assert image["_type"] == "image-file"
            assert (offline / "files" / image["path"]).is_file()
    assert run.history.keys() == {0, 1, 2, 3, 4}
    assert not any(k.startswith(FIGURE_PREFIX) for step in (1, 3) for k in run.history[step])

    # The W&B summary holds summary.json, flattened (spd.run_summary.RunSummary.flat).
    flat = summary.flat()
    assert {"task", "steps", "wall_time_s", "metrics/alive/total", "modules/linear1/C", "figures"} <= flat.keys()
    assert flat["modules/linear1/C"] == 8 and flat["metrics/user/n_modules"] == 2
    for key, value in flat.items():
        logged = run.summary[key]
        assert value == logged or (math.isnan(value) and math.isnan(logged)), (key, value, logged)


@pytest.mark.parametrize("first_step, drawn_at", [(False, [2, 4]), (True, [0, 2, 4])])
def test_figures_at_step_0_only_when_asked(first_step, drawn_at, tmp_path, monkeypatch):
    config = Config.model_validate(
        tms_config_dict(steps=4, eval_freq=2, image_freq=2, image_on_first_step=first_step)
    )
    steps_drawn: list[int] = []

    def save_figures(run_dir, *args):  # drawn right after the evaluation it shows is logged
        steps_drawn.append(json.loads(run_dir.metrics.read_text().splitlines()[-1])["step"])
        return []

    monkeypatch.setattr(spd.run, "save_figures", save_figures)
    run_decomposition(config, tmp_path, progress=False)
    assert steps_drawn == drawn_at


def test_rerun_with_another_config_is_refused_and_leaves_the_run_as_it_was(tmp_path):
    run_decomposition(Config.model_validate(tms_config_dict(steps=5)), tmp_path, progress=False)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    changed = Config.model_validate(tms_config_dict(steps=6, seed=5))
    with pytest.raises(ConfigError, match=r"holds a run of another config \(seed: 0 -> 5; steps: 5 -> 6\)"):
        run_decomposition(changed, tmp_path, progress=False)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_incomplete_run_of_another_config_is_not_resumed(tmp_path, monkeypatch):
    config = Config.model_validate(tms_config_dict(steps=20, save_freq=5))
    monkeypatch.setattr(Trainer, "train_step", killed_at(7))
    with pytest.raises(KeyboardInterrupt):
        run_decomposition(config, tmp_path, progress=False)
    monkeypatch.undo()
    checkpoint = RunDir(tmp_path).checkpoint.read_bytes()
    other_c = Config.model_validate(
        tms_config_dict(steps=20, save_freq=5, target_module_patterns=[["linear1", 9], ["linear2", 9]])
    )
    expected = 'target_module_patterns: [["linear1", 8], ["linear2", 8]] -> [["linear1", 9], ["linear2", 9]]'
    with pytest.raises(ConfigError, match=re.escape(expected)):
        run_decomposition(other_c, tmp_path, progress=False)
    assert RunDir(tmp_path).checkpoint.read_bytes() == checkpoint


def test_a_change_of_result_neutral_fields_only_returns_the_finished_run(tmp_path, monkeypatch):
    first = run_decomposition(Config.model_validate(tms_config_dict(steps=5)), tmp_path, progress=False)
    monkeypatch.setattr(Trainer, "train_step", lambda *a: pytest.fail("trained again"))
    relogged = Config.model_validate(tms_config_dict(steps=5, log_freq=1, save_freq=2, wandb_tags=["x"]))
    assert run_decomposition(relogged, tmp_path, progress=False) == first


def test_no_resume_removes_the_previous_run_of_another_config(tmp_path):
    run_decomposition(Config.model_validate(tms_config_dict(steps=5)), tmp_path, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    other = Config.model_validate(tms_config_dict(steps=4, seed=3))
    summary = run_decomposition(other, tmp_path, resume=False, progress=False)
    assert summary.steps == 4
    assert fingerprint_of(other) == RunFingerprint.model_validate_json(RunDir(tmp_path).fingerprint.read_text())
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_invalid_config_writes_no_run_directory(tmp_path):
    config = Config.model_validate(tms_config_dict(target_module_patterns=[["linear3", 4]]))
    with pytest.raises(ConfigError, match="match no module"):
        run_decomposition(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def progress_lines(run: RunDir) -> list[str]:
    marker = "spd.progress: "
    return [line.split(marker)[1] for line in run.log.read_text().splitlines() if marker in line]


def test_progress_lines_and_file_at_the_interval_and_at_evaluations(tmp_path):
    rarely = Config.model_validate(tms_config_dict(steps=20, eval_freq=10, progress_interval_s=1e9))
    run_decomposition(rarely, tmp_path / "rarely", progress=False)
    lines = progress_lines(RunDir(tmp_path / "rarely"))
    assert [line.split()[1] for line in lines] == ["0/20", "10/20", "20/20"]  # the evaluations
    assert lines[0] == "step 0/20 (0%)"
    assert re.fullmatch(r"step 20/20 \(100%\)  loss \S+  [\d.]+ steps/s  ETA 0s", lines[-1])

    always = Config.model_validate(
        tms_config_dict(steps=20, eval_freq=10, log_freq=1, progress_interval_s=0)
    )
    run_decomposition(always, tmp_path / "always", progress=False)
    run = RunDir(tmp_path / "always")
    steps = [int(line.split()[1].split("/")[0]) for line in progress_lines(run)]
    assert steps == [0, *range(1, 11), *range(10, 21), 20]  # after each step, and each evaluation
    final = read_progress(run.progress)
    assert (final.step, final.steps, final.eta_s) == (20, 20, 0.0)
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    last_step = next(r for r in reversed(records) if TOTAL_LOSS in r)
    assert (last_step["step"], last_step[TOTAL_LOSS]) == (19, final.loss)


def test_a_resume_may_change_the_progress_interval(tmp_path, monkeypatch):
    config = Config.model_validate(tms_config_dict(steps=20, save_freq=5))
    monkeypatch.setattr(Trainer, "train_step", killed_at(7))
    with pytest.raises(KeyboardInterrupt):
        run_decomposition(config, tmp_path, progress=False)
    assert read_progress(RunDir(tmp_path).progress).step == 0
    monkeypatch.undo()
    chattier = Config.model_validate(tms_config_dict(steps=20, save_freq=5, progress_interval_s=0))
    run_decomposition(chattier, tmp_path, progress=False)
    assert read_progress(RunDir(tmp_path).progress).step == 20
    # The resumed process's first step is the first of its rate: a line without steps/s.
    assert progress_lines(RunDir(tmp_path))[1].startswith("step 6/20 (30%)  loss ")
    assert "steps/s" not in progress_lines(RunDir(tmp_path))[1]


def test_a_compiled_step_is_announced_before_it_compiles(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # the message, not the compile
    config = Config.model_validate(tms_config_dict(steps=2, compile_step=True))
    run_decomposition(config, tmp_path, progress=False)
    assert "compiling the training step (about 30 s on first use)" in RunDir(tmp_path).log.read_text()


def test_the_progress_bar_shows_the_latest_steps_loss(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("spd.train.BAR_LOSS_INTERVAL_S", 0.0)
    config = Config.model_validate(tms_config_dict(steps=3, log_freq=100))
    run_decomposition(config, tmp_path, progress=True)
    final_loss = read_progress(RunDir(tmp_path).progress).loss
    assert f"loss={final_loss:.3g}" in capsys.readouterr().err  # step 2's: no log step but 0
