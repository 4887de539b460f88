"""Resolving `[pattern, C]` pairs to the modules they decompose and each module's C.

A module matched by several patterns takes the C of the most specific one: the pattern with the
fewest `*` wildcards, ties broken alphabetically by pattern. Resolution is deterministic.
"""

import fnmatch
import logging

from torch import nn

logger = logging.getLogger(__name__)


def is_decomposable(module: nn.Module) -> bool:
    """nn.Linear, nn.Embedding and transformers' GPT-2 Conv1D (matched by name: no hard import)."""
    return isinstance(module, nn.Linear | nn.Embedding) or type(module).__name__ == "Conv1D"


def specificity_key(pattern: str) -> tuple[int, str]:
    return (pattern.count("*"), pattern)


def resolve_module_patterns(
    model: nn.Module, patterns: list[tuple[str, int]]
) -> dict[str, tuple[str, int]]:
    """{module path: (winning pattern, C)} in the model's module order.

    Wildcards skip modules that cannot be decomposed (e.g. `mlp.*` also matches an activation).
    Raises ValueError naming each pattern that matches no decomposable module, and the type of
    what it matched instead.
    """
    ordered = sorted(patterns, key=lambda pc: specificity_key(pc[0]))
    resolved: dict[str, tuple[str, int]] = {}
    used: set[str] = set()
    wrong_type: dict[str, str] = {}
    for path, module in model.named_modules():
        matches = [(p, c) for p, c in ordered if path and fnmatch.fnmatchcase(path, p)]
        if not matches:
            continue
        if not is_decomposable(module):
            for p, _ in matches:
                wrong_type.setdefault(p, f"{path!r}, a {type(module).__name__}")
            continue
        used.update(p for p, _ in matches)
        resolved[path] = matches[0]
    for pattern, _ in patterns:
        if pattern not in used and pattern in wrong_type:
            raise ValueError(
                f"pattern {pattern!r} matches only {wrong_type[pattern]}; only nn.Linear, "
                "nn.Embedding and GPT-2 Conv1D modules can be decomposed"
            )
    unmatched = [p for p, _ in patterns if p not in used]
    if unmatched:
        candidates = [n for n, m in model.named_modules() if n and is_decomposable(m)]
        raise ValueError(
            f"pattern(s) {unmatched} match no module; decomposable modules are: "
            + ", ".join(candidates[:50])
            + (" ..." if len(candidates) > 50 else "")
        )
    return resolved


def format_resolution_table(resolved: dict[str, tuple[str, int]]) -> str:
    rows = [("module", "pattern", "C")] + [(m, p, str(c)) for m, (p, c) in resolved.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
