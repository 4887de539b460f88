"""MMCS and ML2R (the paper's Table 1): how well single subcomponents reproduce the target's
feature directions.

Along the feature axis of a module (the longer one of its weight: the input axis of TMS's
linear1, the output axis of linear2), each target column w_j is matched to the subcomponent c
whose column (U_c V_jc) has the largest cosine similarity with it.
MMCS = mean_j max_c cos(w_j, U_c V_jc);  ML2R = mean_j ‖U_c* V_jc*‖ / ‖w_j‖.

Only alive components compete: a dead component keeps the direction it had when it died and can
out-cosine the live one that carries the feature, while it carries almost none of its norm.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def mmcs_ml2r(
    target_weight: Tensor, V: Tensor, U: Tensor, alive: Tensor | None = None
) -> tuple[float, float]:
    """target_weight (d_out, d_in), V (d_in, C), U (C, d_out); alive (C,) bool, None: all."""
    if alive is not None:
        if not bool(alive.any()):
            return float("nan"), float("nan")
        V, U = V[:, alive], U[alive]
    d_out, d_in = target_weight.shape
    if d_in >= d_out:  # features along the input axis: column j of W vs U_c * V[j, c]
        targets = target_weight.T  # (d_in, d_out)
        columns = V[:, :, None] * U[None, :, :]  # (d_in, C, d_out)
    else:  # features along the output axis: row i of W vs V[:, c] * U[c, i]
        targets = target_weight  # (d_out, d_in)
        columns = U.T[:, :, None] * V.T[None, :, :]  # (d_out, C, d_in)
    cos = F.cosine_similarity(columns, targets[:, None, :], dim=-1)  # (features, C)
    best_cos, best = cos.max(dim=1)
    best_columns = columns[torch.arange(len(best)), best]
    ratio = best_columns.norm(dim=-1) / targets.norm(dim=-1).clamp_min(1e-12)
    return float(best_cos.mean()), float(ratio.mean())
