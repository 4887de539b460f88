
from pathlib import Path

import pytest
import yaml
from torch import nn

from spd.identity_insertion import PRE_IDENTITY, insert_identity_operations
from spd.module_patterns import format_resolution_table, resolve_module_patterns


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(4, 8)
        self.down_proj = nn.Linear(8, 4)
        self.act = nn.ReLU()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.h = nn.ModuleList([Block(), Block()])


def test_most_specific_pattern_wins():
    resolved = resolve_module_patterns(Net(), [("h.*.*", 100), ("h.*.c_fc", 50)])
    assert resolved["h.0.c_fc"] == ("h.*.c_fc", 50)
    assert resolved["h.1.c_fc"] == ("h.*.c_fc", 50)
    assert resolved["h.0.down_proj"] == ("h.*.*", 100)


def test_ties_are_broken_alphabetically_by_pattern():
    resolved = resolve_module_patterns(Net(), [("h.?.c_fc", 7), ("h.*.c_*", 9), ("h.*.c_f?", 8)])
    # h.?.c_fc has no '*', so it wins outright
    assert resolved["h.0.c_fc"] == ("h.?.c_fc", 7)
    tie = resolve_module_patterns(Net(), [("h.1.*", 3), ("h.*.c_fc", 5)])
    assert tie["h.1.c_fc"] == ("h.*.c_fc", 5)  # one '*' each; "h.*.c_fc" < "h.1.*"


def test_resolution_is_in_module_order_and_deterministic():
    patterns = [("h.*.down_proj", 2), ("embed", 3), ("h.*.c_fc", 4)]
    first = resolve_module_patterns(Net(), patterns)
    assert list(first) == ["embed", "h.0.c_fc", "h.0.down_proj", "h.1.c_fc", "h.1.down_proj"]
    assert first == resolve_module_patterns(Net(), list(reversed(patterns)))


def test_unmatched_pattern_is_named():
    with pytest.raises(ValueError, match=r"\['h.\*.up_proj'\] match no module"):
        resolve_module_patterns(Net(), [("h.*.c_fc", 4), ("h.*.up_proj", 4)])


def test_non_decomposable_module_is_named():
    with pytest.raises(ValueError, match="pattern .h.0.act. matches only .h.0.act., a ReLU"):
        resolve_module_patterns(Net(), [("h.0.act", 4)])


def test_resolution_table_lists_module_pattern_c():
    table = format_resolution_table(resolve_module_patterns(Net(), [("h.*.c_fc", 4)]))
    assert table.splitlines() == [
        "module    pattern   C",
        "h.0.c_fc  h.*.c_fc  4",
        "h.1.c_fc  h.*.c_fc  4",
    ]


def readme_per_module_c_block() -> dict:
    """The YAML example of README's "Per-module C" section."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Per-module C", 1)[1]
    return yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])


def test_the_readme_example_resolves_against_a_gpt2_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    example = readme_per_module_c_block()
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=16, n_positions=8))
    identity = [(pattern, c) for pattern, c in example["identity_module_patterns"]]
    insert_identity_operations(model, [pattern for pattern, _ in identity])
    patterns = [(pattern, c) for pattern, c in example["target_module_patterns"]]
    resolved = resolve_module_patterns(
        model, patterns + [(f"{pattern}.{PRE_IDENTITY}", c) for pattern, c in identity]
    )
    assert {path: c for path, (_, c) in resolved.items()} == {
        "transformer.h.0.mlp.c_fc": 10,
        "transformer.h.1.mlp.c_fc": 10,
        "transformer.h.0.mlp.c_proj": 100,
        "transformer.h.1.mlp.c_proj": 100,
        "transformer.h.0.attn.c_proj.pre_identity": 15,
    }
