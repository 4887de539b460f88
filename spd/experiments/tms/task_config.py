"""Config of the toy-model-of-superposition task: the target model, how it is trained, and the data."""

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from spd.strict_model import StrictModel

DataGenerationType = Literal[
    "at_least_zero_active",
    "exactly_one_active",
    "exactly_two_active",
    "exactly_three_active",
    "exactly_four_active",
    "exactly_five_active",
]

FeatureSampler = Literal["every_entry", "active_entries"]
"""How a batch of sparse features is drawn (spd.sparse_features); see SAMPLER_DESCRIPTION."""

SAMPLER_DESCRIPTION = (
    "every_entry: two uniforms per entry (the original stream); active_entries: the same "
    "distribution from random numbers for the active entries only (at_least_zero_active only; "
    "faster at low feature_probability, different batches from the same seed)"
)


def check_sampler(sampler: FeatureSampler, data_generation_type: DataGenerationType) -> None:
    if sampler == "active_entries" and data_generation_type != "at_least_zero_active":
        raise ValueError(
            f"sampler active_entries draws at_least_zero_active data only, not "
            f"{data_generation_type}: use sampler every_entry"
        )


class TMSTargetConfig(StrictModel):
    """Everything that defines a trained TMS target; its hash names the cached target."""

    n_features: PositiveInt
    n_hidden: PositiveInt
    n_hidden_layers: int = Field(0, ge=0)
    tied_weights: bool = True
    init_bias_to_zero: bool = False
    fixed_identity_hidden_layers: bool = False
    train_steps: PositiveInt = 10_000
    train_batch_size: PositiveInt = 1024
    train_lr: float = Field(5e-3, gt=0)
    train_weight_decay: float = Field(0.01, ge=0)
    train_feature_probability: float = Field(0.05, gt=0, le=1)
    train_seed: int = 0


class TMSTaskConfig(StrictModel):
    task_name: Literal["tms"] = "tms"
    target: TMSTargetConfig
    feature_probability: float = Field(gt=0, le=1)
    data_generation_type: DataGenerationType = "at_least_zero_active"
    sampler: FeatureSampler = Field("every_entry", description=SAMPLER_DESCRIPTION)

    @model_validator(mode="after")
    def _sampler_fits_the_data(self) -> "TMSTaskConfig":
        check_sampler(self.sampler, self.data_generation_type)
        return self
