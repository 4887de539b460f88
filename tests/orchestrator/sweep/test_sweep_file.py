from pathlib import Path

import pytest

from orchestrator.sweep.file import SweepFile, SweepFileError, load_sweep_file
from orchestrator.sweep.params import ConfigKey, PatternC
from tests.orchestrator.short_sweeps import write_sweep_file


def labels_and_values(sweep: SweepFile, experiment: str) -> list[tuple[str, tuple, bool]]:
    return [(p.label, p.values, p.swept) for p in sweep.params_for(experiment)]


def test_global_and_section_merge_in_file_order() -> None:
    sweep = SweepFile.model_validate(
        {
            "global": {"seed": {"values": [0, 1]}, "steps": 100, "lr": {"values": [1e-3]}},
            "tms_5-2": {"lr": {"values": [1e-2, 3e-2]}, "batch_size": 32},
        }
    )
    assert labels_and_values(sweep, "tms_5-2") == [
        ("seed", (0, 1), True),
        ("steps", (100,), False),
        ("lr", (1e-2, 3e-2), True),  # overridden in place
        ("batch_size", (32,), False),
    ]
    # An experiment without a section gets the global keys only.
    assert labels_and_values(sweep, "tms_40-10") == [
        ("seed", (0, 1), True),
        ("steps", (100,), False),
        ("lr", (1e-3,), True),
    ]


def test_nested_and_dotted_keys_are_the_same_key() -> None:
    sweep = SweepFile.model_validate(
        {
            "global": {"losses": {"importance_minimality": {"coeff": {"values": [1, 2]}}}},
            "tms_5-2": {"losses.importance_minimality.coeff": {"values": [3]}},
        }
    )
    params = sweep.params_for("tms_5-2")
    assert [(p.key, p.values) for p in params] == [
        (ConfigKey("losses.importance_minimality.coeff"), (3,))
    ]


def test_lists_are_values_fixed_or_swept() -> None:
    sweep = SweepFile.model_validate(
        {"global": {"ci_fn_hidden_dims": [32], "wandb_tags": {"values": [["a"], ["a", "b"]]}}}
    )
    assert labels_and_values(sweep, "tms_5-2") == [
        ("ci_fn_hidden_dims", ([32],), False),
        ("wandb_tags", (["a"], ["a", "b"]), True),
    ]


def test_pattern_c_per_pattern_and_for_all_patterns() -> None:
    sweep = SweepFile.model_validate(
        {
            "tms_5-2": {
                "C": {"layers.*.mlp_in": {"values": [100, 200]}, "linear2": 7},
                "identity_C": {"values": [3, 4]},
            }
        }
    )
    params = sweep.params_for("tms_5-2")
    assert [(p.key, p.values, p.swept) for p in params] == [
        (PatternC("target_module_patterns", "layers.*.mlp_in"), (100, 200), True),
        (PatternC("target_module_patterns", "linear2"), (7,), False),
        (PatternC("identity_module_patterns", None), (3, 4), True),
    ]
    assert [p.label for p in params] == ["C[layers.*.mlp_in]", "C[linear2]", "identity_C"]


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"tms_5-3": {"seed": 1}}, "unknown experiment section(s) tms_5-3"),
        ({"global": {"seed": {"values": []}}}, "`values` must be a non-empty list"),
        ({"global": {"seed": {"values": 3}}}, "`values` must be a non-empty list"),
        ({"global": {"seed": {"values": [1], "extra": 2}}}, "a swept key takes only `values:`"),
        ({"global": {"losses": {}}}, "an empty mapping sets nothing"),
        ({"tms_5-2": {"C": {"linear1": {"min": 1}}}}, "C[linear1]: give a C or {values: [...]}"),
        ({"global": [1, 2]}, "global: Input should be a valid dictionary"),
    ],
)
def test_malformed_sweep_files_are_rejected_on_load(
    tmp_path: Path, sections: dict, message: str
) -> None:
    path = write_sweep_file(tmp_path / "bad.yaml", sections)
    with pytest.raises(SweepFileError) as error:
        load_sweep_file(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_unknown_section_lists_known_experiments(tmp_path: Path) -> None:
    path = write_sweep_file(tmp_path / "s.yaml", {"tms5-2": {"seed": 1}})
    with pytest.raises(SweepFileError, match="tms_5-2, tms_5-2-id"):
        load_sweep_file(path)


def test_missing_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(SweepFileError, match="does not exist"):
        load_sweep_file(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("global: {seed: [1,\n")
    with pytest.raises(SweepFileError, match="broken.yaml: malformed YAML at line 2"):
        load_sweep_file(tmp_path / "broken.yaml")


def test_shipped_sweep_files_load() -> None:
    sweeps = Path(__file__).resolve().parents[3] / "sweeps"
    default = load_sweep_file(sweeps / "default.yaml")
    assert list(default.experiments) == ["tms_5-2", "tms_40-10"]
    pattern_c = load_sweep_file(sweeps / "pattern_c_tms_5-2.yaml")
    assert [p.label for p in pattern_c.params_for("tms_5-2")] == ["C[linear1]", "C[linear2]"]
    resid = load_sweep_file(sweeps / "pattern_c_resid_mlp3.yaml").params_for("resid_mlp3")
    assert [(p.label, len(p.values)) for p in resid] == [
        ("C[layers.*.mlp_in]", 3),
        ("C[layers.*.mlp_out]", 2),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Rule: a key is given once per section, in whichever spelling.
        (
            "global:\n  losses.faithfulness.coeff: 1\n  losses: {faithfulness: {coeff: 2}}\n",
            (
                "global: losses.faithfulness.coeff is given twice, as "
                "`losses.faithfulness.coeff: ...` and as `losses: {faithfulness: {coeff: ...}}`: "
                "keep one"
            ),
        ),
        (
            "tms_5-2:\n  seed: 1\n  seed: {values: [2, 3]}\n",
            "the key 'seed' is given twice in one mapping (lines 2 and 3): write it once",
        ),
        (
            "tms_5-2:\n  C: 5\n  C: {linear1: 6}\n",
            "the key 'C' is given twice in one mapping (lines 2 and 3): write it once",
        ),
        # Rule: no key inside another key of the same section.
        (
            "tms_5-2:\n  losses.faithfulness: null\n  losses.faithfulness.coeff: 2\n",
            (
                "tms_5-2: `losses.faithfulness: ...` replaces all of losses.faithfulness, and "
                "`losses.faithfulness.coeff: ...` sets a key inside it: which one holds would depend "
                "on their order; keep one"
            ),
        ),
        (
            "global:\n  losses: {faithfulness: {coeff: {values: [1, 2]}}}\n  losses: null\n",
            "the key 'losses' is given twice in one mapping (lines 2 and 3)",
        ),
        (
            (
                "global:\n  losses: {faithfulness: {coeff: {values: [1, 2]}}}\n"
                "  losses.faithfulness: null\n"
            ),
            (
                "global: `losses.faithfulness: ...` replaces all of losses.faithfulness, and "
                "`losses: {faithfulness: {coeff: ...}}` sets a key inside it"
            ),
        ),
        # Rule: a plain list of Cs is research-code syntax for a sweep.
        (
            "tms_5-2:\n  C: {linear1: [10, 20]}\n",
            (
                "tms_5-2: C[linear1]: a C is one integer, got the list [10, 20]; to sweep, write "
                "`C: {linear1: {values: [10, 20]}}`"
            ),
        ),
        (
            "tms_5-2:\n  identity_C: [3, 4]\n",
            (
                "tms_5-2: identity_C: a C is one integer, got the list [3, 4]; to sweep, write "
                "`identity_C: {values: [3, 4]}`"
            ),
        ),
    ],
)
def test_a_key_means_one_thing(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SweepFileError) as error:
        load_sweep_file(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_a_section_may_override_a_global_key() -> None:
    sweep = SweepFile.model_validate(
        {
            "global": {"losses.faithfulness.coeff": {"values": [1, 2]}, "C": {"linear1": 4}},
            "tms_5-2": {"losses": {"faithfulness": {"coeff": 3}}, "C": {"linear1": 5}},
        }
    )
    assert labels_and_values(sweep, "tms_5-2") == [
        ("losses.faithfulness.coeff", (3,), False),
        ("C[linear1]", (5,), False),
    ]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1e-3", 1e-3),
        ("5e4", 5e4),
        ("-2E-5", -2e-5),
        ("1.0e3", 1e3),  # YAML 1.1 wants a signed exponent too
        ("+.5e-3", 5e-4),
        ("1.0e-3", 1e-3),
        ("0.01", 0.01),
        ("3", 3),
        ('"1e-3"', "1e-3"),  # quoted: a string, as written
        ("e3", "e3"),
    ],
)
def test_yaml_numbers_with_an_exponent_are_floats(
    tmp_path: Path, literal: str, value: float | str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"global:\n  lr: {{values: [{literal}]}}\n")
    ((lr,),) = [p.values for p in load_sweep_file(path).params_for("tms_5-2")]
    assert (lr, type(lr)) == (value, type(value))


def test_which_experiments_a_file_covers() -> None:
    sections = SweepFile.model_validate({"tms_5-2": {"seed": 1}, "tms_40-10": None})
    assert sections.uncovered(["tms_5-2", "tms_5-2-id", "tms_40-10"]) == ["tms_5-2-id"]
    assert sections.sections() == ["tms_5-2", "tms_40-10"]
    with_global = SweepFile.model_validate({"global": {"seed": 1}, "tms_5-2": {"seed": 2}})
    assert with_global.uncovered(["tms_5-2-id", "resid_mlp3"]) == []
    assert with_global.sections() == ["global", "tms_5-2"]
    assert SweepFile.model_validate({}).uncovered(["tms_5-2"]) == ["tms_5-2"]


@pytest.mark.parametrize(
    ("section", "labels"),
    [
        ({"losses": {"faithfulness": {"values": [None]}}}, ["C[linear1]", "losses.faithfulness"]),
        (
            {"target_module_patterns": [["linear1", 3], ["linear2", 3]]},
            ["losses.faithfulness.coeff", "target_module_patterns"],
        ),
        # The same key: the section's values, in global's place.
        ({"losses.faithfulness.coeff": 3}, ["losses.faithfulness.coeff", "C[linear1]"]),
    ],
)
def test_a_section_key_replaces_the_global_keys_inside_it(
    tmp_path: Path, section: dict, labels: list[str]
) -> None:
    """Global axes that the section overwrites would leave an axis of identical jobs."""
    path = write_sweep_file(tmp_path / "s.yaml", {
        "global": {"losses.faithfulness.coeff": {"values": [1, 2]}, "C": {"linear1": {"values": [4, 5]}}},
        "tms_5-2": section,
    })  # fmt: skip
    assert [p.label for p in load_sweep_file(path).params_for("tms_5-2")] == labels
