import pytest
import torch

from spd.config import Config
from spd.config_loading import load_config
from spd.sparse_features import sample_sparse_features


def sample(kind, p=0.5, n=4000, features=6, value_range=(0.0, 1.0), sampler="every_entry"):
    generator = torch.Generator().manual_seed(0)
    return sample_sparse_features(
        n, features, p, kind, value_range, generator, torch.device("cpu"), sampler
    )


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


@pytest.mark.parametrize("p", [0.01, 0.05, 0.5, 1.0])
def test_drawing_only_the_active_entries_gives_the_same_distribution(p):
    n, features = 20000, 50
    batch = sample("at_least_zero_active", p=p, n=n, features=features, value_range=(-1.0, 3.0),
                   sampler="active_entries")  # fmt: skip
    active = batch.ne(0).float()
    # Each entry is on with probability p, independently: per-feature rates and per-row counts
    # have the binomial means and spreads (bounds: 5 standard errors).
    rate_error = (p * (1 - p) / n) ** 0.5
    assert (active.mean(0) - p).abs().max() <= 5 * rate_error + 1e-9
    counts = active.sum(1)
    assert counts.mean().item() == pytest.approx(features * p, abs=5 * (features * p / n) ** 0.5 + 1e-9)
    assert counts.var().item() == pytest.approx(features * p * (1 - p), rel=0.1, abs=1e-9)
    values = batch[batch.ne(0)]
    assert values.min() >= -1 and values.max() <= 3
    assert values.mean().item() == pytest.approx(1.0, abs=0.05)
    assert values.std().item() == pytest.approx(4 / 12**0.5, rel=0.05)


def test_drawing_only_the_active_entries_is_seeded_and_a_stream_of_its_own():
    first = sample("at_least_zero_active", p=0.01, sampler="active_entries")
    assert torch.equal(first, sample("at_least_zero_active", p=0.01, sampler="active_entries"))
    generator = torch.Generator().manual_seed(0)
    sample_sparse_features(4000, 6, 0.01, "at_least_zero_active", (0.0, 1.0), generator,
                           torch.device("cpu"), "active_entries")  # fmt: skip
    every = torch.Generator().manual_seed(0)
    sample_sparse_features(4000, 6, 0.01, "at_least_zero_active", (0.0, 1.0), every,
                           torch.device("cpu"))  # fmt: skip
    # The generator moved on by fewer draws: its next number is not the every-entry stream's.
    assert not torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=every))


def test_the_active_entries_sampler_draws_only_at_least_zero_active_data():
    with pytest.raises(ValueError, match="active_entries draws at_least_zero_active data only"):
        sample("exactly_two_active", sampler="active_entries")
    raw = load_config("tms_5-2").model_dump()
    raw["task_config"] |= {"data_generation_type": "exactly_one_active", "sampler": "active_entries"}
    with pytest.raises(ValueError, match="use sampler every_entry"):
        Config.model_validate(raw)
