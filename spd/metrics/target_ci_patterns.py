"""The known CI solution of a toy model, as a config gives it (`target_ci_patterns`); the
distance from it is computed in spd.metrics.target_ci. Its own module: every config loads it,
and the computation imports numpy, which commands that only read configs do not need."""

from pydantic import Field, PositiveInt

from spd.strict_model import StrictModel


class IdentityCIPattern(StrictModel):
    pattern: str
    n_features: PositiveInt


class DenseCIPattern(StrictModel):
    pattern: str
    k: PositiveInt
    min_entries: PositiveInt = 1


class TargetCIPatterns(StrictModel):
    """The expected CI solution of a toy model, per module pattern (first match wins)."""

    identity: list[IdentityCIPattern] = Field(default_factory=list)
    dense: list[DenseCIPattern] = Field(default_factory=list)
