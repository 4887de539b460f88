"""The toy model of superposition: features -> hidden -> features, ReLU on the output."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spd.experiments.tms.task_config import TMSTargetConfig


class TMSModel(nn.Module):
    """`relu(linear2(hidden_layers(linear1(x))))`.

    With `tied=True` (target training) linear2 has no weight of its own: each forward sets it to
    linear1.weightᵀ, so one matrix is trained. A trained target is saved untied (`untied_state_dict`)
    and decomposed as two ordinary nn.Linear modules; it is frozen then, so nothing is lost.
    """

    def __init__(self, config: TMSTargetConfig, tied: bool):
        super().__init__()
        self.tied = tied
        self.linear1 = nn.Linear(config.n_features, config.n_hidden, bias=False)
        self.hidden_layers = nn.ModuleList(
            nn.Linear(config.n_hidden, config.n_hidden, bias=False)
            for _ in range(config.n_hidden_layers)
        )
        self.linear2 = nn.Linear(config.n_hidden, config.n_features, bias=True)
        if config.init_bias_to_zero:
            nn.init.zeros_(self.linear2.bias)
        if config.fixed_identity_hidden_layers:
            for layer in self.hidden_layers:
                with torch.no_grad():
                    layer.weight.copy_(torch.eye(config.n_hidden))
                layer.weight.requires_grad_(False)
        if tied:
            del self.linear2.weight

    def forward(self, x: Tensor) -> Tensor:
        if self.tied:
            self.linear2.weight = self.linear1.weight.T  # type: ignore[assignment]
        h = self.linear1(x)
        for layer in self.hidden_layers:
            h = layer(h)
        return F.relu(self.linear2(h))

    def untied_state_dict(self) -> dict[str, Tensor]:
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        if self.tied:
            state["linear2.weight"] = self.linear1.weight.detach().T.clone()
        return state
