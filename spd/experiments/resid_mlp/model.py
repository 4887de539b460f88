"""The residual MLP: sparse features written into a residual stream by a fixed random embedding,
processed by n_layers MLP blocks, and read off by the transposed embedding.

The residual stream is kept factored (spd.low_rank): x W_E + Σ_layers h_l W_out_lᵀ is never
materialised, since everything reads it through a matrix. With d_embed = 1000 against 100
features and d_mlp = 50, that is most of the matmul work of an SPD step saved.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spd.experiments.resid_mlp.task_config import ResidMLPTargetConfig
from spd.low_rank import LowRankSum


def random_unit_embedding(n_features: int, d_embed: int, seed: int) -> Tensor:
    """(n_features, d_embed) with unit-norm rows: nearly orthogonal feature directions."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n_features, d_embed, generator=generator), dim=1)


class ResidualReader(nn.Linear):
    """An nn.Linear that reads the factored residual stream (or a plain tensor)."""

    def forward(self, resid: Tensor | LowRankSum) -> Tensor:
        if isinstance(resid, LowRankSum):
            return resid.linear(self.weight, self.bias)
        return super().forward(resid)


class ResidualWriter(nn.Linear):
    """An nn.Linear whose output, written into the residual stream, stays factored: h @ Wᵀ + b."""

    def forward(self, h: Tensor) -> LowRankSum:  # type: ignore[override]
        return LowRankSum.product(h, self.weight.T, self.bias)


class MLPBlock(nn.Module):
    def __init__(self, d_embed: int, d_mlp: int, in_bias: bool, out_bias: bool):
        super().__init__()
        self.mlp_in = ResidualReader(d_embed, d_mlp, bias=in_bias)
        self.mlp_out = ResidualWriter(d_mlp, d_embed, bias=out_bias)

    def forward(self, resid: LowRankSum) -> LowRankSum:
        return self.mlp_out(F.relu(self.mlp_in(resid)))


class ResidMLP(nn.Module):
    """`(x W_E + Σ_layers MLP(resid)) W_U` with W_U = W_Eᵀ.

    W_E is a buffer: it is saved with the target but never trained, in target training or SPD.
    """

    def __init__(self, config: ResidMLPTargetConfig):
        super().__init__()
        self.register_buffer(
            "W_E", random_unit_embedding(config.n_features, config.d_embed, config.train_seed)
        )
        self.layers = nn.ModuleList(
            MLPBlock(config.d_embed, config.d_mlp, config.in_bias, config.out_bias)
            for _ in range(config.n_layers)
        )

    @property
    def W_U(self) -> Tensor:
        return self.W_E.T

    def forward(self, x: Tensor) -> Tensor:
        resid = LowRankSum.product(x, self.W_E)
        for layer in self.layers:
            resid = resid + layer(resid)
        return resid @ self.W_U
