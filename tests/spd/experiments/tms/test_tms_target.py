import pytest
import torch

from spd.experiments.tms.model import TMSModel
from spd.experiments.tms.task_config import TMSTargetConfig
from spd.experiments.tms.train_target import train_tms_target, unrepresented_features
from spd.target_cache import cached_target_dir, load_or_train_target


def test_tied_model_trains_one_matrix_and_saves_untied():
    config = TMSTargetConfig(n_features=5, n_hidden=2)
    model = TMSModel(config, tied=True)
    assert "linear2.weight" not in dict(model.named_parameters())
    x = torch.rand(3, 5)
    out = model(x)
    state = model.untied_state_dict()
    assert torch.equal(state["linear2.weight"], model.linear1.weight.detach().T)
    untied = TMSModel(config, tied=False)
    untied.load_state_dict(state)
    assert torch.allclose(untied(x), out)


def test_fixed_identity_hidden_layer_is_frozen_identity():
    model = TMSModel(TMSTargetConfig(n_features=5, n_hidden=2, n_hidden_layers=1, fixed_identity_hidden_layers=True), tied=True)
    assert torch.equal(model.hidden_layers[0].weight, torch.eye(2))
    assert not model.hidden_layers[0].weight.requires_grad


def test_trained_target_represents_every_feature_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SPD_CACHE_DIR", str(tmp_path))
    config = TMSTargetConfig(n_features=5, n_hidden=2, train_steps=2000)
    state = load_or_train_target(
        "tms", config, lambda: train_tms_target(config, torch.device("cpu"), progress=False)
    )
    model = TMSModel(config, tied=False)
    model.load_state_dict(state)
    assert unrepresented_features(model) == []
    assert (cached_target_dir("tms", config) / "model.pt").exists()
    again = load_or_train_target("tms", config, lambda: (_ for _ in ()).throw(AssertionError("retrained")))
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_unrepresented_feature_triggers_retraining_with_next_seed(monkeypatch, caplog):
    from spd.experiments.tms import train_target

    config = TMSTargetConfig(n_features=5, n_hidden=2, train_steps=1)
    seeds = []

    def fake_train_once(cfg, seed, device, *, progress):
        seeds.append(seed)
        model = TMSModel(cfg, tied=True)
        with torch.no_grad():
            model.linear1.weight.fill_(1.0)
            if seed == 0:
                model.linear1.weight[:, 3] = 0.0  # feature 3 unrepresented
        return model

    monkeypatch.setattr(train_target, "train_tms_once", fake_train_once)
    train_tms_target(config, torch.device("cpu"), progress=False)
    assert seeds == [0, 1]
    assert "leaves features [3] unrepresented" in caplog.text


@pytest.mark.parametrize("progress", [False, True])
def test_target_training_bar_follows_progress(progress, capfd, monkeypatch):
    """`spd-decompose --quiet` passes progress=False down here: no target-training bar."""
    from spd.experiments.tms import train_target

    # A few steps represent no feature: accept the first seed rather than train 5 of them.
    monkeypatch.setattr(train_target, "unrepresented_features", lambda model: [])
    config = TMSTargetConfig(n_features=5, n_hidden=2, train_steps=20)
    train_tms_target(config, torch.device("cpu"), progress=progress)
    assert ("train TMS target" in capfd.readouterr().err) == progress
