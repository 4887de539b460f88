import pytest
import torch

from spd.metrics.weight_match import mmcs_ml2r


def test_exact_per_feature_components_give_one_and_one():
    W = torch.randn(2, 5)  # TMS linear1 layout: 5 features on the input axis
    V = torch.eye(5)  # component c reads feature c
    U = W.T.clone()  # and writes column c of W
    assert mmcs_ml2r(W, V, U) == pytest.approx((1.0, 1.0))


def test_output_axis_features_and_shrinkage():
    W = torch.randn(5, 2)  # TMS linear2 layout: 5 features on the output axis
    V = W.T.clone() * 0.5  # (2, 5): component c writes row c of W at half size
    U = torch.eye(5)
    mmcs, ml2r = mmcs_ml2r(W, V, U)
    assert mmcs == pytest.approx(1.0)
    assert ml2r == pytest.approx(0.5)
