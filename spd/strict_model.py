"""The base of every config model in the project: unknown keys are errors, instances are frozen."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
