"""YAML as users mean it: exponent floats, repeated keys as errors, and the fast writer of many
similar configs."""

import math

import pytest
import yaml

from spd.config_loading import config_to_yaml, load_config
from spd.registry import EXPERIMENTS
from spd.yaml_loading import MappingDumper, parse_yaml_document


def test_exponent_floats_are_floats_and_repeated_keys_are_errors() -> None:
    assert parse_yaml_document("lr: 1e-3\nn: 5e4\n", "t") == {"lr": 0.001, "n": 50000.0}
    with pytest.raises(yaml.YAMLError, match="the key 'lr' is given twice"):
        parse_yaml_document("lr: 1\nlr: 2\n", "t")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_a_config_written_by_the_dumper_loads_back_equal(name: str) -> None:
    config = load_config(name)
    text = config_to_yaml(config)
    assert yaml.safe_load(text) == config.model_dump(mode="json")
    assert text == yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def test_one_dumper_writes_many_mappings_each_as_itself() -> None:
    dumper = MappingDumper()
    tricky = {
        "long_key_" * 12: "a long string " * 12,
        "quoted": "line\r\nbreak: 'quotes' \"both\"",
        "numbers": [1, 1.0, True, None, math.inf, -0.0, 1e-300],
        "empty": [{}, []],
        "nested": {"a": {"b": [1, {"c": "d"}]}},
    }
    for value in (0.1, 1, "1", True, None):
        data = {"value": value} | tricky
        assert yaml.safe_load(dumper.dump(data)) == yaml.safe_load(yaml.safe_dump(data))
    assert dumper.dump({}) == yaml.safe_dump({})
