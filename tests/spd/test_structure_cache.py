"""Resolved module structures kept on disk (spd.structure_cache): a structure resolved once is
read back as resolved, not built again; anything the key covers (the structure, the package's
sources, the libraries' versions) that changes is a miss; what the key does not cover is resolved
every time."""

import json
from pathlib import Path

import pytest

from spd import structure_cache, target_checks
from spd.config import Config
from spd.config_loading import load_config
from spd.structure_cache import StructureCache, code_fingerprint, covers
from spd.validate import Validator
from tests.conftest import tms_config_dict


def good_and_bad() -> list[Config]:
    return [
        Config.model_validate(tms_config_dict()),
        Config.model_validate(tms_config_dict(target_module_patterns=[["nope", 3]])),
    ]


def resolved(validator: Validator, configs: list[Config]) -> list[tuple[list, list[str]]]:
    return [(validator(config), validator.module_paths(config)) for config in configs]


def test_a_structure_resolved_once_is_read_back_as_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolved(Validator(structure_cache=StructureCache(tmp_path)), good_and_bad())
    assert first[0] == ([], ["linear1", "linear2"])
    assert first[1][1] == [] and "'nope'" in str(first[1][0][0])

    def resolve_again(config: Config) -> None:
        raise AssertionError(f"resolved again: {config.target_module_patterns}")

    monkeypatch.setattr(target_checks, "resolve_modules", resolve_again)
    again = resolved(Validator(structure_cache=StructureCache(tmp_path)), good_and_bad())
    assert again == first


def test_another_structure_or_other_code_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = StructureCache(tmp_path)
    cache.store("structure", {"module_paths": ["a"]})
    assert StructureCache(tmp_path).load("structure") == {"module_paths": ["a"]}
    assert StructureCache(tmp_path).load("another structure") is None
    monkeypatch.setattr(structure_cache, "installed_version", lambda name: "0.0")
    assert StructureCache(tmp_path).load("structure") is None


def test_the_code_fingerprint_covers_every_source_file(tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 2\n")
    seen = {code_fingerprint(package)}
    assert code_fingerprint(package) in seen
    (package / "notes.txt").write_text("not code")
    assert code_fingerprint(package) in seen
    (package / "sub" / "b.py").write_text("B = 3\n")
    seen.add(code_fingerprint(package))
    (package / "sub" / "b.py").rename(package / "b.py")  # the same bytes as another module
    seen.add(code_fingerprint(package))
    (package / "c.py").write_text("")
    seen.add(code_fingerprint(package))
    assert len(seen) == 4


def test_what_the_key_does_not_cover_is_resolved_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub LM's module tree comes from its config.json, which may appear or change."""
    hub_model = load_config("gpt2")
    assert not covers(hub_model)
    assert covers(load_config("tiny_lm_local")) and covers(load_config("tms_5-2"))
    calls: list[Config] = []
    monkeypatch.setattr(
        target_checks, "resolve_modules", lambda config: calls.append(config) or ([], ["x"])
    )
    for _ in range(2):
        Validator(False, StructureCache(tmp_path)).module_paths(hub_model)
    assert len(calls) == 2
    assert list(tmp_path.rglob("*.json")) == []


def test_a_damaged_entry_is_resolved_and_written_again(tmp_path: Path) -> None:
    config = good_and_bad()[0]
    Validator(structure_cache=StructureCache(tmp_path)).module_paths(config)
    [entry] = tmp_path.rglob("*.json")
    entry.write_text('{"module_paths": ["lin')
    paths = Validator(structure_cache=StructureCache(tmp_path)).module_paths(config)
    assert paths == ["linear1", "linear2"]
    assert json.loads(entry.read_text())["module_paths"] == paths
