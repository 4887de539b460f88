import pytest

from orchestrator.sweep.expand import expand_jobs, run_name, short_labels
from orchestrator.sweep.file import SweepFile
from orchestrator.sweep.params import ConfigKey, Param, PatternC, format_value


def pattern_cs(raw: dict, field: str = "target_module_patterns") -> dict[str, int]:
    return {pattern: c for pattern, c in raw[field]}


def test_per_pattern_c_grid_in_file_order() -> None:
    sweep = SweepFile.model_validate(
        {"tms_5-2": {"C": {"linear1": {"values": [5, 10, 20]}, "linear2": {"values": [10, 20]}}}}
    )
    jobs = expand_jobs(["tms_5-2"], sweep, {})
    assert [pattern_cs(job.raw_config) for job in jobs] == [
        {"linear1": 5, "linear2": 10},
        {"linear1": 5, "linear2": 20},
        {"linear1": 10, "linear2": 10},
        {"linear1": 10, "linear2": 20},
        {"linear1": 20, "linear2": 10},
        {"linear1": 20, "linear2": 20},
    ]
    assert jobs[1].params == {"C[linear1]": 5, "C[linear2]": 20}
    assert jobs[1].name == "tms_5-2-C[linear1]=5-C[linear2]=20"
    assert all(job.error is None for job in jobs)


def test_one_pattern_varies_while_the_others_keep_their_c() -> None:
    sweep = SweepFile.model_validate({"tms_5-2-id": {"C": {"hidden_layers.0": {"values": [2, 4]}}}})
    jobs = expand_jobs(["tms_5-2-id"], sweep, {})
    assert [pattern_cs(job.raw_config) for job in jobs] == [
        {"linear1": 20, "linear2": 20, "hidden_layers.0": 2},
        {"linear1": 20, "linear2": 20, "hidden_layers.0": 4},
    ]


def test_c_for_every_pattern_and_identity_patterns() -> None:
    sweep = SweepFile.model_validate(
        {
            "tms_5-2": {
                # Fix identity patterns and sweep their C; one C for all target patterns.
                "identity_module_patterns": [["linear1", 1]],
                "identity_C": {"linear1": {"values": [3, 6]}},
                "C": 9,
            }
        }
    )
    jobs = expand_jobs(["tms_5-2"], sweep, {})
    assert [pattern_cs(job.raw_config, "identity_module_patterns") for job in jobs] == [
        {"linear1": 3},
        {"linear1": 6},
    ]
    assert all(pattern_cs(job.raw_config) == {"linear1": 9, "linear2": 9} for job in jobs)
    assert [job.name for job in jobs] == [
        "tms_5-2-identity_C[linear1]=3",
        "tms_5-2-identity_C[linear1]=6",
    ]


def test_unknown_pattern_is_the_jobs_error_listing_the_configs_patterns() -> None:
    sweep = SweepFile.model_validate({"tms_5-2": {"C": {"linear3": {"values": [1, 2]}}}})
    jobs = expand_jobs(["tms_5-2"], sweep, {})
    assert [job.raw_config for job in jobs] == [None, None]
    assert all("'linear3' is not in target_module_patterns" in job.error for job in jobs)
    assert all("the config has: linear1, linear2" in job.error for job in jobs)


def test_non_integer_c_is_an_error() -> None:
    sweep = SweepFile.model_validate({"tms_5-2": {"C": {"linear1": {"values": [True, "8"]}}}})
    errors = [job.error for job in expand_jobs(["tms_5-2"], sweep, {})]
    assert errors == [
        "C[linear1]: C must be an integer, got True",
        "C[linear1]: C must be an integer, got '8'",
    ]


def test_evaluation_run_and_cli_overrides() -> None:
    jobs = expand_jobs(["tms_5-2", "tms_5-2-id"], None, {"device": "cpu"}, job_suffix="try1")
    assert [job.name for job in jobs] == ["tms_5-2-try1", "tms_5-2-id-try1"]
    assert [job.params for job in jobs] == [{}, {}]
    assert all(job.raw_config["device"] == "cpu" for job in jobs)


def test_fixed_values_apply_to_every_job_and_nesting_merges() -> None:
    sweep = SweepFile.model_validate(
        {
            "global": {
                "seed": {"values": [0, 1]},
                "steps": 123,
                "losses": {"importance_minimality": {"pnorm": 2.0}},
            },
        }
    )
    jobs = expand_jobs(["tms_5-2"], sweep, {})
    assert [job.raw_config["seed"] for job in jobs] == [0, 1]
    assert all(job.raw_config["steps"] == 123 for job in jobs)
    # The rest of `losses` is kept: nesting sets keys, it does not replace mappings.
    loss = jobs[0].raw_config["losses"]["importance_minimality"]
    assert loss == {"coeff": 3e-3, "pnorm": 2.0}
    assert jobs[0].raw_config["losses"]["stochastic_recon"] == {"coeff": 1.0}


def test_short_labels_stay_unique() -> None:
    swept = [
        Param(ConfigKey("losses.faithfulness.coeff"), (1,), True),
        Param(ConfigKey("losses.importance_minimality.coeff"), (1,), True),
        Param(ConfigKey("task_config.feature_probability"), (1,), True),
        Param(PatternC("target_module_patterns", "layers.*.mlp_in"), (1,), True),
    ]
    assert short_labels(swept) == {
        "losses.faithfulness.coeff": "faithfulness.coeff",
        "losses.importance_minimality.coeff": "importance_minimality.coeff",
        "task_config.feature_probability": "feature_probability",
        "C[layers.*.mlp_in]": "C[layers.*.mlp_in]",
    }


def test_value_formatting_in_run_names() -> None:
    assert [format_value(v) for v in (1e-3, 3e-5, 0.5, [16, 16], None, True, "abc")] == [
        "0.001",
        "3e-05",
        "0.5",
        "[16,16]",
        "null",
        "true",
        "abc",
    ]
    assert run_name("tms_5-2", {"coeff": 1e-3, "seed": 2}, None) == "tms_5-2-coeff=0.001-seed=2"


def test_resid_mlp3_pattern_c_example_gives_six_jobs() -> None:
    sweep = SweepFile.model_validate(
        {
            "resid_mlp3": {
                "C": {
                    "layers.*.mlp_in": {"values": [100, 200, 400]},
                    "layers.*.mlp_out": {"values": [25, 50]},
                }
            }
        }
    )
    jobs = expand_jobs(["resid_mlp3"], sweep, {})
    assert [pattern_cs(job.raw_config) for job in jobs][:2] == [
        {"layers.*.mlp_in": 100, "layers.*.mlp_out": 25},
        {"layers.*.mlp_in": 100, "layers.*.mlp_out": 50},
    ]
    assert len(jobs) == 6 and all(job.error is None for job in jobs)


def test_float_names_are_distinct_and_short() -> None:
    # %g gave both 0.00123457: one name for two jobs.
    assert format_value(0.0012345671) != format_value(0.0012345674)
    assert [format_value(v) for v in (1e-3, 2.5e-4, 1e-4, 3.0, 1e16, 0.1 + 0.2)] == [
        "0.001",
        "0.00025",
        "0.0001",
        "3.0",
        "1e+16",
        "0.30000000000000004",  # the value it is, not the 0.3 it looks like
    ]
    sweep = SweepFile.model_validate({"tms_5-2": {"lr": {"values": [0.0012345671, 0.0012345674]}}})
    assert [job.name for job in expand_jobs(["tms_5-2"], sweep, {})] == [
        "tms_5-2-lr=0.0012345671",
        "tms_5-2-lr=0.0012345674",
    ]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"seed": [0, 1]},
            "seed: a plain list is one value; to sweep, write `seed: {values: [0, 1]}`",
        ),
        (
            {"losses": {"importance_minimality": {"coeff": [1e-3, 3e-3]}}},
            (
                "losses.importance_minimality.coeff: a plain list is one value; to sweep, write "
                "`losses.importance_minimality.coeff: {values: [0.001, 0.003]}`"
            ),
        ),
        ({"wandb_project": ["a", "b"]}, 'to sweep, write `wandb_project: {values: ["a", "b"]}`'),
    ],
)
def test_a_plain_list_for_a_single_value_says_how_to_sweep(section: dict, message: str) -> None:
    sweep = SweepFile.model_validate({"tms_5-2": section | {"steps": {"values": [10, 20]}}})
    jobs = expand_jobs(["tms_5-2"], sweep, {})
    assert [job.raw_config for job in jobs] == [None, None]
    assert all(message in job.error for job in jobs)
    assert all("Input should be a valid" in job.error for job in jobs)  # the config's own error


def test_lists_stay_values_for_list_fields() -> None:
    sweep = SweepFile.model_validate(
        {
            "tms_5-2": {
                "target_module_patterns": [["linear1", 5]],
                "tied_components": [],
                "ci_fn_hidden_dims": [0],  # wrong inside the list: the config says so, no hint
                "seed": {"values": [0, 1]},
            }
        }
    )
    jobs = expand_jobs(["tms_5-2"], sweep, {})
    assert all(job.error is None for job in jobs)
    assert all(job.raw_config["target_module_patterns"] == [["linear1", 5]] for job in jobs)
