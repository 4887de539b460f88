"""YAML as users mean it, for config files, `--set` values, sweep and search files.

PyYAML's safe loader implements YAML 1.1, with two surprises for people who write configs:
`1e-3` is the string "1e-3" (a float needs a dot and a signed exponent: `1.0e-3`), and a key
given twice in one mapping silently keeps the last value. `YamlLoader` is the safe loader
(it builds no Python objects) with exponent floats and with repeated keys as errors.

Writing: `MappingDumper` is `yaml.safe_dump(data, sort_keys=False)` for the many similar
configs of a sweep, at a fraction of the cost of PyYAML's pure-Python dumper.
"""

import re
from typing import Any

import yaml

from spd.entry_texts import EntryTexts

MERGE_TAG = "tag:yaml.org,2002:merge"
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
"""Floats with an exponent, which YAML 1.1 reads as strings unless they have a dot and a signed
exponent: 1e-3, 5e4, 1.0e3 (1.0e-3 was already a float)."""
ENTRY_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter when PyYAML was built with it (4x faster): the representer, which decides
what each value becomes, is PyYAML's safe one either way."""


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two YAML 1.1 surprises removed: `1e-3` is a float (YAML 1.1 reads
    a number without a dot, or with an unsigned exponent, as the string "1e-3"), and a key given
    twice in one mapping is an error (PyYAML keeps the last one without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice in one mapping (lines {first_lines[key]} and "
                    f"{line}): write it once",
                    key_node.start_mark,
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+.0123456789"))


def parse_yaml_document(text: str, name: str) -> Any:
    """The YAML document in `text`; errors point at lines of `name` (the file)."""
    loader = YamlLoader(text)  # a SafeLoader: builds no Python objects
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class MappingDumper:
    """`yaml.safe_dump(data, sort_keys=False)` for many similar JSON-like mappings
    (str keys; str, int, float, bool, None, lists and dicts of them; no object twice, which PyYAML
    would write as an anchor and an alias) such as `model_dump(mode="json")` gives.

    A top-level block mapping is written as its entries' texts one after the other, so each
    entry's text is memoized (spd.entry_texts): the configs of a sweep share all but a few of
    their fields, and PyYAML's representer and emitter, pure Python, were most of the time of
    writing 10,000.
    libyaml's emitter may wrap or quote a long or escaped string differently from PyYAML's;
    both load back to the same value."""

    def __init__(self) -> None:
        self._entry_texts = EntryTexts(yaml_entry)

    def dump(self, data: dict[str, Any]) -> str:
        if not data:
            return yaml.safe_dump(data, sort_keys=False)
        return "".join(self._entry_texts(data.items()))


def yaml_entry(key: str, value: Any) -> str:
    return yaml.dump({key: value}, Dumper=ENTRY_DUMPER, sort_keys=False)
