import json

import yaml
from click.testing import CliRunner

from spd.cli import main
from tests.conftest import tms_config_dict


def test_schema_is_printed():
    result = CliRunner().invoke(main, ["--schema"])
    assert result.exit_code == 0
    assert "target_module_patterns" in json.loads(result.output)["properties"]


def test_decompose_a_config_file_with_overrides(tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(tms_config_dict(steps=10)))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, [str(config_path), "--out", str(out), "--set", "steps=4", "--set", "eval_freq=2", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert f"Summary:       {out / 'summary.json'}" in result.output
    assert "linear1: C=8" in result.output
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_typo_in_a_key_is_a_clear_error_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["tms_5-2", "--out", str(out), "--set", "bach_size=3"])
    assert result.exit_code != 0
    assert "bach_size: unknown key (check its spelling)" in result.output
    assert not out.exists()


def test_unknown_experiment_is_a_clear_error():
    result = CliRunner().invoke(main, ["tms_5-3"])
    assert result.exit_code != 0
    assert "neither a config file nor an experiment" in result.output


def test_diverged_run_is_a_one_line_error_and_leaves_no_summary(tmp_path):
    out = tmp_path / "run"
    args = ["tms_5-2", "--out", str(out), "--quiet", "--set", "device=cpu"]
    for override in ("lr=1e6", "steps=400", "save_freq=100", "eval_freq=100", "compile_step=false"):
        args += ["--set", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Error: training diverged at step" in result.output
    assert not (out / "summary.json").exists()
    assert "training diverged at step" in (out / "run.log").read_text()
