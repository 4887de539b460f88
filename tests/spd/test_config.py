import re

import pytest
import yaml
from pydantic import ValidationError

from spd.config import Config
from spd.config_fingerprint import fingerprint_of
from spd.config_loading import (
    ConfigError,
    config_to_yaml,
    load_config,
    set_pattern_c,
    validate_config,
)
from spd.registry import EXPERIMENTS
from tests.conftest import tms_config_dict


def test_per_module_c_pairs_load():
    config = Config.model_validate(tms_config_dict(target_module_patterns=[["linear1", 10], ["linear2", 20]]))
    assert config.target_module_patterns == [("linear1", 10), ("linear2", 20)]


def test_identity_patterns_become_pre_identity_modules():
    config = Config.model_validate(tms_config_dict(identity_module_patterns=[["linear2", 5]]))
    assert config.all_module_patterns[-1] == ("linear2.pre_identity", 5)


def test_old_global_c_migrates_with_one_warning():
    data = tms_config_dict(target_module_patterns=["linear1", "linear2"], C=20)
    with pytest.warns(FutureWarning, match="global `C: 20` is deprecated") as record:
        config = Config.model_validate(data)
    assert len(record) == 1
    assert config.target_module_patterns == [("linear1", 20), ("linear2", 20)]


def test_old_global_c_migrates_identity_patterns_too():
    data = tms_config_dict(
        target_module_patterns=["linear1"], identity_module_patterns=["linear2"], C=7
    )
    with pytest.warns(FutureWarning):
        config = Config.model_validate(data)
    assert config.identity_module_patterns == [("linear2", 7)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"C": 20}, "cannot be combined with \\[pattern, C\\] pairs"),
        ({"target_module_patterns": ["linear1", "linear2"]}, "plain patterns but no C"),
        ({"target_module_patterns": ["linear1", ["linear2", 3]]}, "mixes plain patterns"),
        ({"target_module_patterns": [["linear1", 0]]}, "C of pattern 'linear1' is 0"),
        ({"target_module_patterns": [["linear1", 3], ["linear1", 4]]}, "'linear1' is listed twice"),
        ({"target_module_patterns": [["linear1", 2.5]]}, "valid integer"),
    ],
)
def test_bad_patterns_are_clear_errors(overrides, message):
    with pytest.raises(ValidationError, match=message):
        Config.model_validate(tms_config_dict(**overrides))


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"lr_shedule: unknown key"):
        validate_config(tms_config_dict(lr_shedule={"type": "cosine"}))


def test_nested_unknown_key_is_an_error():
    data = tms_config_dict()
    data["losses"] = dict(data["losses"], faithfullness={"coeff": 1.0})
    with pytest.raises(ConfigError, match=r"losses.faithfullness: unknown key"):
        validate_config(data)


def test_config_is_frozen():
    config = Config.model_validate(tms_config_dict())
    with pytest.raises(ValidationError):
        config.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_registry_config_validates(name):
    assert load_config(name).target_module_patterns


def test_overrides_are_dotted_and_yaml_parsed():
    config = load_config(
        "tms_5-2", ["steps=7", "losses.importance_minimality.coeff=1e-2", "lr_schedule.type=linear"]
    )
    assert (config.steps, config.losses.importance_minimality.coeff) == (7, 1e-2)
    assert config.lr_schedule.type == "linear"


def test_set_pattern_c_changes_one_pattern_and_names_the_others_on_error():
    data = tms_config_dict(target_module_patterns=[["linear1", 10], ["linear2", 20]])
    changed = set_pattern_c(data, "target_module_patterns", "linear2", 30)
    assert changed["target_module_patterns"] == [["linear1", 10], ["linear2", 30]]
    with pytest.raises(ConfigError, match="the config has: linear1, linear2"):
        set_pattern_c(data, "target_module_patterns", "linear3", 5)


def test_json_schema_lists_fields():
    schema = Config.model_json_schema()
    assert "target_module_patterns" in schema["properties"]


@pytest.mark.parametrize(
    "override, field",
    [
        ("lr=.inf", "lr"),
        ("lr=-.inf", "lr"),
        ("losses.stochastic_recon.coeff=.nan", "losses.stochastic_recon.coeff"),
        ("faithfulness_warmup.lr=.nan", "faithfulness_warmup.lr"),
    ],
)
def test_non_finite_floats_are_rejected_naming_the_field(override, field):
    with pytest.raises(ConfigError, match=rf"^{re.escape(field)}: Input should be a finite number$"):
        load_config("tms_5-2", [override])


def test_validate_config_rejects_an_infinite_lr():
    with pytest.raises(ConfigError, match="lr: Input should be a finite number"):
        validate_config(tms_config_dict(lr=float("inf")))


def test_progress_interval_round_trips_and_is_result_neutral():
    config = load_config("tms_5-2", ["progress_interval_s=2.5"])
    assert config.progress_interval_s == 2.5
    assert validate_config(yaml.safe_load(config_to_yaml(config))) == config
    assert fingerprint_of(config) == fingerprint_of(load_config("tms_5-2"))
    with pytest.raises(ConfigError, match="progress_interval_s: Input should be greater than or equal to 0"):
        load_config("tms_5-2", ["progress_interval_s=-1"])
