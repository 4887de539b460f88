"""Config of the residual-MLP task (toy models of compressed computation): the target model, how
it is trained, and the data it is decomposed on."""

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from spd.experiments.tms.task_config import (
    SAMPLER_DESCRIPTION,
    DataGenerationType,
    FeatureSampler,
    check_sampler,
)
from spd.strict_model import StrictModel


class ResidMLPTargetConfig(StrictModel):
    """Everything that defines a trained residual-MLP target; its hash names the cached target.

    The embedding W_E is random and fixed (drawn from `train_seed`); only the MLPs are trained to
    put x + ReLU(x) on the residual stream.
    """

    n_features: PositiveInt
    d_embed: PositiveInt
    d_mlp: PositiveInt
    n_layers: PositiveInt
    in_bias: bool = False
    out_bias: bool = False
    train_steps: PositiveInt = 1000
    train_batch_size: PositiveInt = 2048
    train_lr: float = Field(3e-3, gt=0)
    train_weight_decay: float = Field(0.01, ge=0)
    train_feature_probability: float = Field(0.01, gt=0, le=1)
    train_seed: int = 0


class ResidMLPTaskConfig(StrictModel):
    task_name: Literal["resid_mlp"] = "resid_mlp"
    target: ResidMLPTargetConfig
    feature_probability: float = Field(gt=0, le=1)
    data_generation_type: DataGenerationType = "at_least_zero_active"
    sampler: FeatureSampler = Field("every_entry", description=SAMPLER_DESCRIPTION)

    @model_validator(mode="after")
    def _sampler_fits_the_data(self) -> "ResidMLPTaskConfig":
        check_sampler(self.sampler, self.data_generation_type)
        return self
