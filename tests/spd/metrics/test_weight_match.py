import math

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


def test_dead_components_do_not_compete():
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).T  # (2, 3): 3 features on the input axis
    live_V, live_U = torch.eye(3), W.T.clone()
    dead_V = torch.eye(3)[:, :1]  # a tiny dead copy of feature 0's direction
    dead_U = W.T[:1] * 1e-3
    V, U = torch.cat([live_V, dead_V], dim=1), torch.cat([live_U * 0.999 + 0.001, dead_U])
    alive = torch.tensor([True, True, True, False])
    assert mmcs_ml2r(W, V, U, alive)[1] == pytest.approx(1.0, abs=0.01)
    assert math.isnan(mmcs_ml2r(W, V, U, torch.zeros(4, dtype=torch.bool))[0])
