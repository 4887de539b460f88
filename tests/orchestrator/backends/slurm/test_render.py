"""Rendering sbatch scripts: golden files, quoting of hostile values, template errors.

Regenerate the golden files after an intended template change with
    SPD_UPDATE_GOLDEN=1 bash scripts/run_tests.sh tests/orchestrator/backends/slurm/test_render.py
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.backends.slurm.render import (
    DEFAULT_MAX_ARRAY_SIZE,
    DEFAULT_TEMPLATE,
    ArrayScript,
    TemplateError,
    UnsafeValueError,
    array_chunks,
    max_array_size,
    render_array_script,
    resolve_template,
    sbatch_quote,
    slurm_filename,
)
from orchestrator.sweep.resources import SlurmResources

GOLDEN = Path(__file__).parent / "golden"
HOSTILE = ["x; rm -rf ~", "$(id)", "`id`", "it's", 'say "hi"', "back\\slash", "a b", "$HOME", "50%"]


def script(**changes: object) -> ArrayScript:
    fields: dict = {
        "job_name": "spd-pattern_c_tms_5-2",
        "array_size": 6,
        "max_running": 2,
        "output": "/sweeps/s-1/logs/%A_%a_0_log.out",
        "chdir": "/work",
        "directives": [],
        "signal_delay_s": 90,
        "python": "/venv/bin/python",
        "runner_module": "orchestrator.backends.slurm.array_task",
        "submitit_folder": "/sweeps/s-1/logs",
        "staging_folder": "/sweeps/s-1/logs/array_000",
        "code_dir": "/sweeps/s-1/code",
    }
    return ArrayScript(**(fields | changes))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SPD_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; see the module docstring to regenerate"


def test_default_template_golden_minimal() -> None:
    check_golden(
        "job_array_minimal.sbatch",
        render_array_script(resolve_template(DEFAULT_TEMPLATE), script()),
    )


def test_default_template_golden_with_resources_and_env() -> None:
    resources = SlurmResources(
        partition="gpu",
        time="2:00:00",
        gpus=1,
        cpus_per_task=4,
        mem="16G",
        account="lab",
        qos="high",
        extra={"constraint": "a100", "exclusive": ""},
    )
    text = render_array_script(
        resolve_template("job_array"),
        script(
            job_name="spd-default-run2",
            array_size=1001,
            max_running=8,
            directives=resources.directives(),
            env={"SPD_CACHE_DIR": "/cache", "WANDB_MODE": "offline"},
        ),
    )
    check_golden("job_array_resources.sbatch", text)


def test_default_template_golden_data_parallel() -> None:
    """2 nodes x 2 processes: one torchrun per node under srun, rendezvous at the first node."""
    resources = SlurmResources(
        partition="gpu",
        time="2:00:00",
        gpus=2,
        cpus_per_task=8,
        mem="64G",
        nodes=2,
        nproc_per_node=2,
    )
    text = render_array_script(
        resolve_template(DEFAULT_TEMPLATE),
        script(directives=resources.directives(), nodes=2, nproc_per_node=2),
    )
    check_golden("job_array_data_parallel.sbatch", text)


def test_one_process_per_job_renders_no_launcher() -> None:
    """nodes=1, nproc_per_node=1 is today's script exactly (the golden files above)."""
    plain = render_array_script(resolve_template(DEFAULT_TEMPLATE), script())
    assert plain == render_array_script(
        resolve_template(DEFAULT_TEMPLATE), script(nodes=1, nproc_per_node=1)
    )
    assert "srun" not in plain and "--nodes" not in plain


def test_data_parallel_script_starts_torchrun_under_srun(tmp_path: Path) -> None:
    """Run the rendered 1-node x 3-process script with bash and stand-in srun and scontrol: the
    launcher gets every value verbatim, the head node and the job's port."""
    weird_dir = tmp_path / "dir with $(touch x) and 'quotes'"
    weird_dir.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    report = tmp_path / "report.txt"
    fakes = {
        "srun": f"{{ printf '%s\\n' \"$@\"; printf 'PYTHONSAFEPATH=%s\\n' \"$PYTHONSAFEPATH\"; }} > {report}",
        "scontrol": "[ \"$1 $2 $3\" = 'show hostnames n[3-4]' ] && printf 'n3\\nn4\\n'",
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    text = render_array_script(
        resolve_template(DEFAULT_TEMPLATE),
        script(
            python=str(weird_dir / "python"),
            submitit_folder=str(weird_dir / "logs"),
            staging_folder=str(weird_dir / "logs" / "array_000"),
            nproc_per_node=3,
        ),
    )
    (tmp_path / "job.sbatch").write_text(text)
    environment = {"SLURM_JOB_ID": "123457", "SLURM_JOB_NODELIST": "n[3-4]"}
    subprocess.run(
        ["bash", str(tmp_path / "job.sbatch")],
        check=True,
        timeout=30,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_CPUS_PER_TASK": "6"} | environment,
    )
    assert not (Path.cwd() / "x").exists()
    assert "#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n" in text
    assert report.read_text().split("\n")[:-1] == [
        "--kill-on-bad-exit=1",
        "--cpus-per-task=6",
        str(weird_dir / "python"),
        "-P",
        "-u",
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=3",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=n3:23457",
        "--rdzv-id=123457",
        "--max-restarts=0",
        "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR2",
        "-m",
        "orchestrator.backends.slurm.array_task",
        str(weird_dir / "logs"),
        str(weird_dir / "logs" / "array_000"),
        "PYTHONSAFEPATH=1",
    ]


def test_processes_per_task_are_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        script(nodes=0)


def sbatch_directive_value(line: str) -> str:
    """What sbatch reads from `#SBATCH --flag="..."`: double quotes group, backslash escapes
    (src/sbatch/opt.c). Used to check that quoting round-trips."""
    raw = line.split("=", 1)[1]
    out, quoted, escaped = [], False, False
    for char in raw:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            break
        else:
            out.append(char)
    return "".join(out)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_round_trip_through_sbatch_lines(value: str) -> None:
    text = render_array_script(
        resolve_template(DEFAULT_TEMPLATE),
        script(job_name=f"spd-s-{value}", chdir=f"/work/{value}", directives=[("comment", value)]),
    )
    lines = {
        line.split("=", 1)[0]: line for line in text.splitlines() if line.startswith("#SBATCH")
    }
    assert sbatch_directive_value(lines["#SBATCH --job-name"]) == f"spd-s-{value}"
    assert sbatch_directive_value(lines["#SBATCH --chdir"]) == f"/work/{value}"
    assert sbatch_directive_value(lines["#SBATCH --comment"]) == value
    assert sbatch_quote(value).startswith('"') and sbatch_quote(value).endswith('"')


def test_hostile_values_in_shell_lines_are_inert(tmp_path: Path) -> None:
    """Run the rendered script with bash, with a stand-in python that reports what it got:
    every value arrives verbatim and nothing in them is executed."""
    marker = tmp_path / "pwned"
    hostile = f'$(touch {marker}); `touch {marker}`; it\'s "q"\nnext line'
    weird_dir = tmp_path / "dir with $(touch x) and 'quotes'"
    weird_dir.mkdir()
    report = tmp_path / "report.txt"
    fake_python = weird_dir / "python"
    fake_python.write_text(
        "#!/bin/bash\n"
        f"{{ printf '%s\\n' \"$@\"; printf 'PYTHONPATH=%s\\n' \"$PYTHONPATH\";"
        f" printf 'X=%s\\n' \"$X\"; }} > {report}\n"
    )
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    text = render_array_script(
        resolve_template(DEFAULT_TEMPLATE),
        script(
            python=str(fake_python),
            submitit_folder=str(weird_dir / "logs"),
            staging_folder=str(weird_dir / "logs" / "array_000"),
            code_dir=str(weird_dir / "code"),
            env={"X": hostile},
        ),
    )
    (tmp_path / "job.sbatch").write_text(text)
    subprocess.run(
        ["bash", str(tmp_path / "job.sbatch")],
        check=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": "/previous"},
    )
    assert not marker.exists()
    lines = report.read_text().split("\n")
    assert lines[:6] == [
        "-P",
        "-u",
        "-m",
        "orchestrator.backends.slurm.array_task",
        str(weird_dir / "logs"),
        str(weird_dir / "logs" / "array_000"),
    ]
    assert lines[6] == f"PYTHONPATH={weird_dir / 'code'}:/previous"
    assert "\n".join(lines[7:9]) == f"X={hostile}"


@pytest.mark.parametrize("field", ["job_name", "chdir", "output"])
def test_newlines_cannot_reach_sbatch_lines(field: str) -> None:
    with pytest.raises(UnsafeValueError, match="newline"):
        render_array_script(resolve_template(DEFAULT_TEMPLATE), script(**{field: "a\nrm -rf ~"}))


def test_environment_names_are_validated() -> None:
    with pytest.raises(UnsafeValueError, match="not environment variable names: A B"):
        script(env={"A B": "x"})


def test_percent_in_paths_is_literal_for_slurm() -> None:
    assert slurm_filename(Path("/runs/50%/logs")) == "/runs/50%%/logs"


def test_broken_template_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sbatch.j2"
    broken.write_text("#!/bin/bash\n#SBATCH --job-name={{ job_name \n")
    with pytest.raises(TemplateError, match=rf"template {broken}, line 2: "):
        render_array_script(broken, script())


def test_undefined_value_in_template_is_an_error(tmp_path: Path) -> None:
    template = tmp_path / "t.sbatch.j2"
    template.write_text("#!/bin/bash\n#SBATCH --partition={{ partition }}\n")
    with pytest.raises(TemplateError, match="'partition' is undefined.*can use: .*job_name"):
        render_array_script(template, script())


def test_template_must_render_a_script(tmp_path: Path) -> None:
    template = tmp_path / "t.sbatch.j2"
    template.write_text("echo {{ job_name | shquote }}\n")
    with pytest.raises(TemplateError, match="starting with '#!'"):
        render_array_script(template, script())


def test_missing_template_lists_the_available_ones() -> None:
    with pytest.raises(TemplateError, match="no template 'nope'.*job_array.sbatch.j2"):
        resolve_template("nope")


def test_array_throttle_and_chunks() -> None:
    assert script(array_size=6, max_running=2).array == "0-5%2"
    assert script(array_size=3, max_running=8).array == "0-2%3"
    assert array_chunks(2500, 1001) == [range(1001), range(1001, 2002), range(2002, 2500)]
    assert array_chunks(5, 1001) == [range(5)]


def test_max_array_size_without_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert max_array_size() == DEFAULT_MAX_ARRAY_SIZE
