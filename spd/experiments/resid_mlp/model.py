"""The residual MLP: sparse features written into a residual stream by a fixed random embedding,
processed by n_layers MLP blocks, and read off by the transposed embedding."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spd.experiments.resid_mlp.task_config import ResidMLPTargetConfig


def random_unit_embedding(n_features: int, d_embed: int, seed: int) -> Tensor:
    """(n_features, d_embed) with unit-norm rows: nearly orthogonal feature directions."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n_features, d_embed, generator=generator), dim=1)


def embed_sparse(x: Tensor, W_E: Tensor) -> Tensor:
    """x @ W_E for rows x (n, n_features), as the weighted sum of the W_E rows of each row's
    active features.

    Inputs are sparse (about one active feature per row at p = 0.01), so looking those rows up
    (F.embedding_bag) costs a fraction of the dense matmul that every masked forward repeats.
    The lookup gives no gradient to x's zero entries: use it only for inputs that need none.
    """
    rows, features = x.nonzero(as_tuple=True)
    first_of_row = torch.searchsorted(rows, torch.arange(x.shape[0], device=x.device))
    return F.embedding_bag(
        features, W_E, first_of_row, mode="sum", per_sample_weights=x[rows, features]
    )


class MLPBlock(nn.Module):
    def __init__(self, d_embed: int, d_mlp: int, in_bias: bool, out_bias: bool):
        super().__init__()
        self.mlp_in = nn.Linear(d_embed, d_mlp, bias=in_bias)
        self.mlp_out = nn.Linear(d_mlp, d_embed, bias=out_bias)

    def forward(self, resid: Tensor) -> Tensor:
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
        # Dense inside a compiled step (compile_step): the lookup's nonzero() would split the
        # graph. The forwards of one step share x, so the compiler can compute the product once.
        dense = x.requires_grad or x.dim() != 2 or torch.compiler.is_compiling()
        resid = x @ self.W_E if dense else embed_sparse(x, self.W_E)
        for layer in self.layers:
            resid = resid + layer(resid)
        return resid @ self.W_U
