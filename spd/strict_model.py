"""The base of every config model in the project: unknown keys are errors, instances are frozen,
and floats are finite (an `lr: .inf` or a nan coefficient is rejected when the config loads, not
found out as a diverged run)."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
