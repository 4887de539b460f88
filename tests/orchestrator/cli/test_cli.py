"""The CLI without running jobs: help, dry runs, and errors before anything is written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from orchestrator.cli.main import main
from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.search.searches import c_search, write_search
from tests.orchestrator.short_sweeps import write_sweep_file


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def only_sweep(sweep_root: Path) -> SweepDir:
    (path,) = sweep_root.iterdir()
    return SweepDir(path)


def test_help_shows_examples_and_both_spellings() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "spd-sweep --experiments tms_5-2,tms_5-2-id --local" in result.output
    assert "--n_agents, --n-agents" in result.output
    assert "status" in result.output


def test_help_lists_the_commands_and_each_has_examples() -> None:
    commands = run("--help").output.split("Commands:")[1]
    for line in [
        "search  Run an Optuna search of FILE's space",
        "resume  Continue a sweep or search",
        "status  Print the state of every job of a sweep.",
        "report  (Re)build the report of a sweep",
    ]:
        assert line in commands
    for command in ["search", "resume"]:
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.output and f"spd-sweep {command} " in result.output


def test_the_command_line_does_not_load_the_training_core() -> None:
    """What keeps `spd-sweep --help` and usage errors fast (bench/bench_orchestrator.py)."""
    code = "import sys, orchestrator.cli.main; print('torch' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout == "False\n"


def test_a_search_records_its_command_as_typed(
    sweep_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_search(tmp_path / "q.yaml", c_search())
    args = ["search", str(path), "--n_trials", "2", "--cpu", "--dry-run"]
    monkeypatch.setattr(sys, "argv", ["spd-sweep", *args])
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert only_sweep(sweep_root).read_meta().command == ["spd-sweep", *args]


def test_dry_run_writes_the_sweep_and_renders_without_submitting(sweep_root: Path) -> None:
    sweep_file = write_sweep_file(
        Path("pc.yaml"),
        {"tms_5-2": {"C": {"linear1": {"values": [5, 10, 20]}, "linear2": {"values": [10, 20]}}}},
    )
    result = run(
        "--sweep",
        str(sweep_file),
        "--n_agents",
        "2",
        "--cpu",
        "--dry-run",
        "--job_suffix",
        "x; rm -rf ~",
        "--sbatch",
        "comment=$(id)",
    )
    assert result.exit_code == 0, result.output
    assert "6 jobs: tms_5-2 6" in result.output
    assert "Would submit 6 of 6 jobs (6 pending)." in result.output
    sweep = only_sweep(sweep_root)
    assert sweep.sweep_id.startswith("pc-x_rm_-rf-")  # the suffix, made safe for a path
    manifest = sweep.read_manifest()
    assert [r.state for r in manifest.jobs] == [JobState.PENDING] * 6
    assert [r.params for r in manifest.jobs][:2] == [
        {"C[linear1]": 5, "C[linear2]": 10},
        {"C[linear1]": 5, "C[linear2]": 20},
    ]
    assert all(sweep.config_path(r.job_id).is_file() for r in manifest.jobs)
    assert sweep.sweep_file.read_text() == sweep_file.read_text()
    script = (sweep.scripts / "array_000.sbatch").read_text()
    assert "#SBATCH --array=0-5%2" in script
    assert '#SBATCH --job-name="spd-pc-x; rm -rf ~"' in script
    assert '#SBATCH --comment="$(id)"' in script
    assert "--gres" not in script  # --cpu: no GPU
    assert not sweep.logs.exists() and not sweep.code.exists()  # nothing submitted


@pytest.mark.parametrize(("experiments", "limit"), [("tms_5-2", "20"), ("tms_5-2,resid_mlp3", "1440")])
def test_default_time_is_twice_the_expected_runtime_at_most_a_day(
    sweep_root: Path, experiments: str, limit: str
) -> None:
    result = run("--experiments", experiments, "--dry-run", "--cpu")
    assert result.exit_code == 0, result.output
    script = (only_sweep(sweep_root).scripts / "array_000.sbatch").read_text()
    assert f'#SBATCH --time="{limit}"' in script


@pytest.mark.parametrize(
    ("args", "cpus", "mem"),
    [
        (["--experiments", "tms_5-2"], "1", "2G"),
        (["--experiments", "tms_5-2,resid_mlp3"], "4", "4G"),  # the most any of them needs
        (["--experiments", "resid_mlp3", "--cpus-per-task", "2", "--mem", "1500M"], "2", "1500M"),
    ],
)
def test_jobs_ask_for_the_cpus_and_memory_of_their_experiment(
    sweep_root: Path, args: list[str], cpus: str, mem: str
) -> None:
    result = run(*args, "--dry-run", "--cpu")
    assert result.exit_code == 0, result.output
    script = (only_sweep(sweep_root).scripts / "array_000.sbatch").read_text()
    assert f'#SBATCH --cpus-per-task="{cpus}"\n#SBATCH --mem="{mem}"\n' in script


def test_evaluation_run_is_the_default(sweep_root: Path) -> None:
    result = run("--experiments", "tms_5-2,tms_5-2-id", "--dry-run", "--time", "1:00:00")
    assert result.exit_code == 0, result.output
    assert "2 jobs: tms_5-2 1, tms_5-2-id 1" in result.output
    sweep = only_sweep(sweep_root)
    assert sweep.sweep_id.startswith("eval-")
    assert sweep.read_meta().kind == "evaluation"
    script = (sweep.scripts / "array_000.sbatch").read_text()
    assert '#SBATCH --gres="gpu:1"' in script and '#SBATCH --time="1:00:00"' in script


def test_same_command_same_sweep(sweep_root: Path) -> None:
    for _ in range(2):
        assert run("--experiments", "tms_5-2", "--dry-run").exit_code == 0
    assert len(list(sweep_root.iterdir())) == 1
    assert run("--experiments", "tms_5-2", "--cpu", "--dry-run").exit_code == 0
    assert len(list(sweep_root.iterdir())) == 2  # a different device is a different job


def test_invalid_jobs_stop_everything_before_writing(sweep_root: Path) -> None:
    sweep_file = write_sweep_file(
        Path("bad.yaml"),
        {"tms_5-2": {"C": {"linear9": {"values": [1, 2]}}, "lr": {"values": [0.1, -1]}}},
    )
    result = run("--sweep", str(sweep_file), "--dry-run")
    assert result.exit_code == 1
    assert "4 of 4 jobs cannot run; nothing was submitted" in result.output
    assert (
        "pattern 'linear9' is not in target_module_patterns; the config has: linear1, linear2"
        in result.output
    )
    assert not sweep_root.exists()


def test_big_sweeps_need_yes(sweep_root: Path) -> None:
    sweep_file = write_sweep_file(
        Path("big.yaml"), {"tms_5-2": {"seed": {"values": list(range(1001))}}}
    )
    result = run("--sweep", str(sweep_file), "--local")
    assert result.exit_code == 1
    assert "1,001 jobs, more than 1,000: pass --yes" in result.output
    assert not sweep_root.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiments", "tms_9-9"], "unknown experiment(s) tms_9-9; known: tms_5-2"),
        (["--experiments", "tms_5-2", "--cpu", "--gpus", "1"], "--cpu asks for no GPU"),
        (
            ["--experiments", "tms_5-2", "--time", "3 hours"],
            "--time: time '3 hours' is not a SLURM time",
        ),
        (
            ["--experiments", "tms_5-2", "--sbatch", "output=x"],
            "--sbatch output: spd-sweep sets --output",
        ),
        (
            ["--experiments", "tms_5-2", "--job_suffix", "a\nb"],
            "--job_suffix: 'a\\nb' contains a newline",
        ),
        (["--experiments", "tms_5-2", "--template", "nope"], "no template 'nope'"),
        (["resume", "nope"], "no sweep 'nope'"),
        (["--sweep", "missing.yaml"], "sweep file missing.yaml does not exist"),
        (["search", "s.yaml", "--sweep"], "--sweep (a grid) and `search` (a search) are two"),
        (["search", "s.yaml", "--retry-failed"], "--retry-failed applies to grid sweeps"),
        (["--experiments", "tms_5-2", "--n_trials", "3"], "--n_trials: only for searches"),
        (["--experiments", "tms_5-2", "--storage", "sqlite:///x.db"], "--storage: only for searches"),
        (
            ["--experiments", "tms_5-2", "--local", "--partition", "gpu", "--sbatch", "x=1"],
            "--partition, --sbatch: SLURM options; --local runs the jobs here and would ignore them",
        ),
        (["--experiments", "tms_5-2", "--local", "--time", "10"], "--time: SLURM options"),
        (["--experiments", "tms_5-2", "--time", "0"], "write --time unlimited if that is what you mean"),
    ],
)
def test_user_errors_are_clear(sweep_root: Path, args: list[str], message: str) -> None:
    result = run(*args, "--dry-run")
    assert result.exit_code != 0
    assert message in result.output
    assert not sweep_root.exists()


def test_resume_keeps_the_definition(sweep_root: Path) -> None:
    result = run("resume", "x", "--experiments", "tms_5-2")
    assert result.exit_code == 2
    assert "resume continues a sweep as defined; it cannot change --experiments" in result.output


def test_status_of_a_dry_run_sweep(sweep_root: Path) -> None:
    assert run("--experiments", "tms_5-2", "--dry-run").exit_code == 0
    sweep = only_sweep(sweep_root)
    result = run("status", sweep.sweep_id)
    assert result.exit_code == 0
    assert f"Sweep {sweep.sweep_id} (evaluation, code " in result.output
    job_line = next(
        line
        for line in result.output.splitlines()
        if line.startswith(sweep.read_manifest().jobs[0].job_id)
    )
    assert job_line.split()[1:4] == ["tms_5-2", "pending", "0"]
    assert "queued 1, running 0, done 0, failed 0" in result.output
    assert json.loads(sweep.manifest_path.read_text())["jobs"][0]["state"] == "pending"


def test_sweep_flag_alone_uses_the_default_sweep_file(sweep_root: Path) -> None:
    result = run("--sweep", "--n_agents", "3", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "12 jobs: tms_5-2 6, tms_40-10 6" in result.output
    sweep = only_sweep(sweep_root)
    assert sweep.sweep_id.startswith("default-")
    assert "#SBATCH --array=0-11%3" in (sweep.scripts / "array_000.sbatch").read_text()


@pytest.mark.parametrize(
    ("sections", "experiments", "message"),
    [
        (
            {"tms_5-2": {"seed": {"values": [0, 1]}}},
            ["--experiments", "tms_5-2,tms_5-2-id"],
            (
                "sweep file s.yaml has no section for tms_5-2-id and no `global:` section (its "
                "sections: tms_5-2): add a section for each, or `global:`, or leave them out of "
                "--experiments"
            ),
        ),
        (
            {},
            [],
            "sweep file s.yaml has no section for tms_5-2, tms_5-2-id, tms_40-10",
        ),
    ],
)
def test_experiments_the_sweep_file_sets_nothing_for_are_an_error(
    sweep_root: Path, sections: dict, experiments: list[str], message: str
) -> None:
    sweep_file = write_sweep_file(Path("s.yaml"), sections)
    result = run("--sweep", str(sweep_file), *experiments, "--dry-run")
    assert result.exit_code != 0
    assert message in " ".join(result.output.split())  # click wraps long messages
    assert not sweep_root.exists()


def test_a_global_section_covers_every_experiment(sweep_root: Path) -> None:
    sweep_file = write_sweep_file(
        Path("g.yaml"), {"global": {"seed": {"values": [0, 1]}}, "tms_5-2": {"steps": 10}}
    )
    result = run("--sweep", str(sweep_file), "--experiments", "tms_5-2,tms_5-2-id", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "4 jobs: tms_5-2 2, tms_5-2-id 2" in result.output


def test_sweep_values_keep_their_yaml_numbers(sweep_root: Path) -> None:
    Path("lr.yaml").write_text("tms_5-2:\n  lr: {values: [1e-3, 3e-3]}\n")
    result = run("--sweep", "lr.yaml", "--dry-run")
    assert result.exit_code == 0, result.output
    manifest = only_sweep(sweep_root).read_manifest()
    assert [r.params for r in manifest.jobs] == [{"lr": 0.001}, {"lr": 0.003}]
    assert [r.name for r in manifest.jobs] == ["tms_5-2-lr=0.001", "tms_5-2-lr=0.003"]


def test_set_overrides_every_job_and_is_part_of_the_sweep(sweep_root: Path) -> None:
    sweep_file = write_sweep_file(Path("s.yaml"), {"tms_5-2": {"seed": {"values": [0, 1]}}})
    plain = run("--sweep", str(sweep_file), "--dry-run", "--cpu")
    assert plain.exit_code == 0, plain.output
    result = run("--sweep", str(sweep_file), "--dry-run", "--cpu", "--set", "steps=7",
                 "--set", "losses.importance_minimality.coeff=2e-3")  # fmt: skip
    assert result.exit_code == 0, result.output
    plain_sweep, set_sweep = sorted(sweep_root.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert plain_sweep != set_sweep  # another config, another sweep
    configs = [yaml.safe_load(p.read_text()) for p in SweepDir(set_sweep).configs.iterdir()]
    assert sorted(c["seed"] for c in configs) == [0, 1]
    assert {c["steps"] for c in configs} == {7}
    assert {c["losses"]["importance_minimality"]["coeff"] for c in configs} == {0.002}
    again = run("resume", set_sweep.name, "--set", "steps=8")
    assert again.exit_code == 2 and "it cannot change --set" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "steps"], "override 'steps' is not of the form key=value"),
        (["--set", "steps=1", "--set", "steps=2"], "--set steps is given twice"),
        (["--cpu", "--set", "device=cuda"], "--set device and --cpu both set device"),
        (["--set", "stepz=3"], "stepz: unknown key"),
    ],
)
def test_bad_set_values_stop_before_anything_is_written(
    sweep_root: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["--experiments", "tms_5-2", "--dry-run", *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not sweep_root.exists() or not any(sweep_root.iterdir())
