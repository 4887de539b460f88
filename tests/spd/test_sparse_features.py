import pytest
import torch

from spd.sparse_features import sample_sparse_features


def sample(kind, p=0.5, n=4000, features=6, value_range=(0.0, 1.0)):
    generator = torch.Generator().manual_seed(0)
    return sample_sparse_features(n, features, p, kind, value_range, generator, torch.device("cpu"))


@pytest.mark.parametrize("kind, n_active", [("exactly_one_active", 1), ("exactly_three_active", 3)])
def test_exactly_n_active(kind, n_active):
    batch = sample(kind)
    assert batch.ne(0).sum(-1).eq(n_active).all()
    assert batch.min() >= 0 and batch.max() <= 1


def test_at_least_zero_active_fires_with_the_feature_probability():
    batch = sample("at_least_zero_active", p=0.5)
    assert batch.ne(0).float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_value_range_is_respected():
    batch = sample("exactly_two_active", value_range=(-1.0, 1.0))
    active = batch[batch.ne(0)]
    assert active.min() >= -1 and active.max() <= 1 and active.min() < -0.5


def test_too_many_active_features_is_an_error():
    with pytest.raises(ValueError, match="needs at least 5 features"):
        sample("exactly_five_active", features=3)
