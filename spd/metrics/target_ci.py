"""Distance of a learned CI pattern from the known solution of a toy model.

The CI of one module on the probe inputs (row j activates feature j alone) is an (F, C) array.
- Identity pattern: each feature should have exactly one component with CI >= 1 - tol, and every
  other entry should be <= tol. Components are matched to features by a Hungarian assignment; the
  distance counts off-diagonal entries > tol and diagonal entries < 1 - tol.
- Dense pattern with k components: k components (those with the most CI mass) should each have
  CI >= 1 - tol on at least `min_entries` features; every other component should stay <= tol.
"""

import fnmatch

import numpy as np

from spd.metrics.target_ci_patterns import TargetCIPatterns


def identity_distance(ci: np.ndarray, tol: float) -> int:
    # Imported here: scipy costs ~0.5 s, and every run imports this module (spd.evaluate).
    from scipy.optimize import linear_sum_assignment

    n_features, C = ci.shape
    if C < n_features:  # too few components: the features left without one count as errors
        ci = np.pad(ci, ((0, 0), (0, n_features - C)))
    rows, cols = linear_sum_assignment(-ci)
    permuted = np.concatenate([ci[:, cols], np.delete(ci, cols, axis=1)], axis=1)
    diagonal = permuted[rows, np.arange(n_features)]
    off = permuted.copy()
    off[rows, np.arange(n_features)] = 0.0
    return int((diagonal < 1 - tol).sum() + (off > tol).sum())


def dense_distance(ci: np.ndarray, k: int, min_entries: int, tol: float) -> int:
    order = np.argsort(-ci.sum(axis=0), kind="stable")
    dense, rest = ci[:, order[:k]], ci[:, order[k:]]
    short = np.maximum(0, min_entries - (dense >= 1 - tol).sum(axis=0)).sum()
    return int(short + (rest > tol).sum())


def target_ci_errors(
    ci_per_module: dict[str, np.ndarray], patterns: TargetCIPatterns, tol: float
) -> dict[str, int]:
    """{module: distance} for every module that an expected pattern covers."""

    errors: dict[str, int] = {}
    for path, ci in ci_per_module.items():
        identity = next((p for p in patterns.identity if fnmatch.fnmatchcase(path, p.pattern)), None)
        dense = next((p for p in patterns.dense if fnmatch.fnmatchcase(path, p.pattern)), None)
        if identity is not None:
            if ci.shape[0] != identity.n_features:
                raise ValueError(f"{path}: CI has {ci.shape[0]} rows, expected {identity.n_features}")
            errors[path] = identity_distance(ci, tol)
        elif dense is not None:
            errors[path] = dense_distance(ci, dense.k, dense.min_entries, tol)
    return errors
