import pytest
import torch

from spd.masks import mask_from_noise
from spd.sigmoids import lower_leaky_hard, upper_leaky_hard


def sample_mask(ci, sampling, generator):
    return mask_from_noise(ci, torch.rand(ci.shape, generator=generator), sampling)


def test_lower_leaky_hard_forward_clamps_and_leaks_only_in_gradient():
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = lower_leaky_hard(x)
    assert y.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([0.01, 0.01, 1.0, 1.0, 0.0])


def test_upper_leaky_hard():
    assert upper_leaky_hard(torch.tensor([2.0, -1.0, 0.3])).tolist() == pytest.approx([1.01, 0.0, 0.3])


@pytest.mark.parametrize("sampling", ["continuous", "binomial"])
def test_masks_lie_between_ci_and_one(sampling):
    generator = torch.Generator().manual_seed(0)
    ci = torch.rand(1000, 7, generator=generator)
    mask = sample_mask(ci, sampling, generator)
    assert bool((mask >= ci).all()) and bool((mask <= 1).all())


def test_mask_of_full_ci_is_one_and_of_zero_ci_is_uniform():
    generator = torch.Generator().manual_seed(0)
    assert sample_mask(torch.ones(10, 3), "continuous", generator).eq(1).all()
    zero = sample_mask(torch.zeros(20000), "continuous", generator)
    assert zero.mean().item() == pytest.approx(0.5, abs=0.01)
    binary = sample_mask(torch.zeros(20000), "binomial", generator)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
