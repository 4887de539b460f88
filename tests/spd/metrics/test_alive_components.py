import torch

from spd.metrics.alive_components import AliveComponentsTracker


def test_batches_until_dead_counts_examples():
    tracker = AliveComponentsTracker({"a": 3}, 0.1, 100, 2, torch.device("cpu"))
    assert tracker.n_batches_until_dead == 50


def test_update_resets_fired_components_strictly_above_threshold():
    tracker = AliveComponentsTracker({"a": 3}, 0.1, 100, 2, torch.device("cpu"))
    tracker.update({"a": torch.tensor([[0.2, 0.05, 0.08], [0.0, 0.1, 0.0]])})
    assert tracker.batches_since_fired["a"].tolist() == [0, 1, 1]


def test_alive_counts_per_module_with_its_own_c():
    tracker = AliveComponentsTracker({"a": 3, "b": 8}, 0.1, 10, 2, torch.device("cpu"))
    tracker.batches_since_fired["a"].copy_(torch.tensor([4, 5, 6]))
    assert tracker.n_alive() == {"a": 1, "b": 8}
