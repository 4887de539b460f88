import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.sweep.expand import expand_jobs
from orchestrator.sweep.file import SweepFile
from orchestrator.sweep.validate import (
    JOB_COUNT_CONFIRM_THRESHOLD,
    TRACKING_FIELDS,
    JobIds,
    SweepValidationError,
    check_job_count,
    job_count_summary,
    validate_jobs,
)
from spd.config_loading import load_config


def sweep(sections: dict) -> SweepFile:
    return SweepFile.model_validate(sections)


def test_every_problem_is_reported_at_once_with_the_jobs_params() -> None:
    specs = expand_jobs(
        ["tms_5-2", "tms_5-2-id"],
        sweep(
            {
                "global": {"steps": {"values": [100, "many"]}},
                "tms_5-2-id": {"C": {"hidden_layer": 4}},
            }
        ),
        {},
    )
    with pytest.raises(SweepValidationError) as error:
        validate_jobs(specs, check_device_here=True)
    message = str(error.value)
    assert message.startswith("3 of 4 jobs cannot run; nothing was submitted:")
    # The wrong type, with the value that caused it.
    assert "- tms_5-2, 1 job (steps=many):" in message
    assert "steps: Input should be a valid integer" in message
    # The unknown pattern, for both tms_5-2-id jobs, listing the patterns the config has.
    assert "- tms_5-2-id, 2 jobs (steps=100; steps=many):" in message
    assert (
        "pattern 'hidden_layer' is not in target_module_patterns; the config has: "
        "linear1, linear2, hidden_layers.0" in message
    )


def test_many_jobs_with_one_problem_are_summarised() -> None:
    specs = expand_jobs(
        ["tms_5-2"], sweep({"global": {"lr": {"values": [-1, -2, -3, -4, -5]}}}), {}
    )
    with pytest.raises(SweepValidationError) as error:
        validate_jobs(specs, check_device_here=True)
    assert "5 jobs (lr=-1; lr=-2; lr=-3; and 2 more)" in str(error.value)
    assert "lr: Input should be greater than 0" in str(error.value)


def test_identical_configs_are_an_error() -> None:
    specs = expand_jobs(["tms_5-2"], sweep({"global": {"seed": {"values": [3, 3]}}}), {})
    with pytest.raises(SweepValidationError, match="identical configs"):
        validate_jobs(specs, check_device_here=True)


def test_job_ids_hash_what_a_job_computes() -> None:
    jobs = validate_jobs(
        expand_jobs(["tms_5-2"], sweep({"global": {"seed": {"values": [0, 1]}}}), {}),
        check_device_here=True,
    )
    again = validate_jobs(
        expand_jobs(["tms_5-2"], sweep({"global": {"seed": {"values": [0, 1]}}}), {}),
        check_device_here=True,
    )
    assert [j.job_id for j in jobs] == [j.job_id for j in again]
    assert len({j.job_id for j in jobs}) == 2
    assert all(len(j.job_id) == 12 for j in jobs)
    # Where a run logs is not part of its id; what it computes is.
    job_id = JobIds()
    logged = jobs[0].config_values | {"wandb_project": "p", "wandb_run_name": "x"}
    assert job_id(logged) == jobs[0].job_id
    assert job_id(jobs[0].config_values | {"steps": 7}) != jobs[0].job_id


def test_count_summary_and_confirmation_threshold() -> None:
    specs = expand_jobs(
        ["tms_5-2", "tms_5-2-id"],
        sweep({"global": {"seed": {"values": [0, 1]}}, "tms_5-2": {"lr": {"values": [0.1, 0.2]}}}),
        {},
    )
    jobs = validate_jobs(specs, check_device_here=True)
    assert job_count_summary(jobs) == "6 jobs: tms_5-2 4, tms_5-2-id 2"
    check_job_count(JOB_COUNT_CONFIRM_THRESHOLD, confirmed=False)
    check_job_count(JOB_COUNT_CONFIRM_THRESHOLD + 1, confirmed=True)
    with pytest.raises(SweepValidationError, match="1,001 jobs, more than 1,000: pass --yes"):
        check_job_count(JOB_COUNT_CONFIRM_THRESHOLD + 1, confirmed=False)


def test_module_patterns_are_resolved_against_the_model_before_anything_runs() -> None:
    patterns = [[["linear1", 4], ["linear2", 4]], [["linear1", 4], ["lineer2", 4]]]
    specs = expand_jobs(
        ["tms_5-2"], sweep({"global": {"target_module_patterns": {"values": patterns}}}), {}
    )
    with pytest.raises(SweepValidationError) as error:
        validate_jobs(specs, check_device_here=False)
    message = str(error.value)
    assert message.startswith("1 of 2 jobs cannot run; nothing was submitted:")
    assert (
        "target_module_patterns: pattern(s) ['lineer2'] match no module; decomposable modules "
        "are: linear1, linear2" in message
    )


def test_a_device_is_checked_here_only_for_jobs_that_run_here() -> None:
    specs = expand_jobs(["tms_5-2"], sweep({"global": {"device": {"values": ["cuda:7"]}}}), {})
    assert len(validate_jobs(specs, check_device_here=False)) == 1
    with pytest.raises(SweepValidationError, match="'cuda:7' is not available here"):
        validate_jobs(specs, check_device_here=True)


def test_job_ids_are_the_hash_of_the_config_as_sorted_json() -> None:
    """The ids of sweeps already on disk: one JobIds for many configs (memoized fields) gives
    each config's own."""
    job_id = JobIds()
    eps = "losses.importance_minimality.eps"
    for overrides in (
        ["seed=0"],
        ["seed=1"],
        ["lr=0.5"],
        ["seed=0"],
        [f"{eps}=0.0"],
        [f"{eps}=-0.0"],
    ):
        values = load_config("tms_5-2", overrides).model_dump(mode="json")
        computed = {k: v for k, v in values.items() if k not in TRACKING_FIELDS}
        canonical = json.dumps(computed, sort_keys=True)
        assert job_id(values) == hashlib.sha256(canonical.encode()).hexdigest()[:12]


def test_a_sweep_of_structures_validated_before_imports_no_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing torch takes seconds, most of a dry run: the structures resolved by an earlier
    command come from the core's cache (spd.structure_cache)."""
    monkeypatch.setenv("SPD_CACHE_DIR", str(tmp_path))
    experiments = ["tms_5-2", "tms_5-2-id", "resid_mlp1"]
    validate_jobs(expand_jobs(experiments, None, {}), check_device_here=True)  # fills the cache
    check = (
        "import sys\n"
        "from orchestrator.sweep.expand import expand_jobs\n"
        "from orchestrator.sweep.validate import validate_jobs\n"
        f"jobs = validate_jobs(expand_jobs({experiments!r}, None, {{}}), check_device_here=True)\n"
        "print(len(jobs), sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[0] == "3 []"
