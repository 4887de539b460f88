"""Identity insertion: decompose the identity map in front of a module.

Each module matched by an identity pattern gets a `pre_identity` nn.Linear(d_in, d_in) set to the
identity, frozen, and a forward pre-hook that routes the module's input through it. The new module
`<path>.pre_identity` is then an ordinary decomposable linear layer.
"""

import fnmatch

import torch
from torch import Tensor, nn

from spd.components import target_weight
from spd.module_patterns import is_decomposable

PRE_IDENTITY = "pre_identity"


def _route_through_identity(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (module.get_submodule(PRE_IDENTITY)(args[0]), *args[1:])


def insert_identity_operations(model: nn.Module, patterns: list[str]) -> list[str]:
    """Insert the identities in place; return the paths of the new `.pre_identity` modules."""
    inserted: list[str] = []
    unmatched = set(patterns)
    for path, module in list(model.named_modules()):
        matched = [p for p in patterns if path and fnmatch.fnmatchcase(path, p)]
        if not matched:
            continue
        unmatched.difference_update(matched)
        if isinstance(module, nn.Embedding) or not is_decomposable(module):
            raise ValueError(
                f"identity pattern {matched[0]!r} matches {path!r}, a {type(module).__name__}; "
                "identities go before nn.Linear or GPT-2 Conv1D modules only"
            )
        weight = target_weight(module)
        d_in = weight.shape[1]
        identity = nn.Linear(d_in, d_in, bias=False, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            identity.weight.copy_(torch.eye(d_in))
        identity.requires_grad_(False)
        module.add_module(PRE_IDENTITY, identity)
        module.register_forward_pre_hook(_route_through_identity)
        inserted.append(f"{path}.{PRE_IDENTITY}")
    if unmatched:
        raise ValueError(f"identity pattern(s) {sorted(unmatched)} match no module")
    return inserted
