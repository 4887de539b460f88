import numpy as np
import pytest

from spd.metrics.target_ci import (
    TargetCIPatterns,
    dense_distance,
    identity_distance,
    target_ci_errors,
)


@pytest.mark.parametrize(
    "ci, expected",
    [
        ([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]], 0),
        ([[1, 0.2, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], 1),
        ([[0.7, 0.3, 0, 0.2], [0.2, 0.95, 0, 0], [0, 0, 1, 0]], 4),
        ([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]], 0),  # any permutation of components
    ],
)
def test_identity_distance(ci, expected):
    assert identity_distance(np.array(ci, dtype=float), tol=0.1) == expected


def test_dense_distance():
    assert dense_distance(np.array([[0.9, 0.2, 0, 0], [0.6, 0.95, 0, 0]]), 1, 1, 0.1) == 2
    assert dense_distance(np.array([[0.5, 0.5, 0], [0.7, 0.8, 0]]), 2, 1, 0.1) == 2


def test_errors_per_module_at_two_tolerances():
    patterns = TargetCIPatterns.model_validate(
        {"identity": [{"pattern": "linear*", "n_features": 2}], "dense": [{"pattern": "hidden", "k": 1}]}
    )
    ci = {
        "linear1": np.array([[1.0, 0.15], [0.0, 1.0]]),
        "hidden": np.array([[1.0, 0.0], [0.95, 0.15]]),
    }
    assert target_ci_errors(ci, patterns, 0.1) == {"linear1": 1, "hidden": 1}
    assert target_ci_errors(ci, patterns, 0.2) == {"linear1": 0, "hidden": 0}


def test_identity_with_too_few_components_counts_the_uncovered_features():
    assert identity_distance(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 0.1) == 1
