"""A non-editable install works away from the checkout: the wheel carries what the packages read
at run time (registry configs, sbatch and report templates), and spd-sweep dry-runs and submits
from it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.orchestrator.short_sweeps import SHORT_RUN

REPO = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "README.md", "spd", "orchestrator")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages installed from a wheel into a directory of their own (no internet: no
    dependencies, no build isolation; the test environment has them)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = root / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
    )
    (wheel,) = wheels.glob("spd-*.whl")
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True)  # fmt: skip
    return site


def spd_sweep(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`spd-sweep` from the installed packages, run in `cwd` (not the checkout)."""
    env = os.environ | {"PYTHONPATH": str(site), "SPD_RUNS_DIR": str(cwd / "runs")}
    return subprocess.run(
        [sys.executable, "-P", "-m", "orchestrator.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_the_installed_packages_are_the_ones_imported(installed: Path, tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(installed)}
    code = "import orchestrator, spd; print(orchestrator.__file__); print(spd.__file__)"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert [Path(p).is_relative_to(installed) for p in out] == [True, True], out


def test_installed_spd_sweep_dry_runs_a_slurm_sweep(installed: Path, tmp_path: Path) -> None:
    result = spd_sweep(installed, tmp_path, "--experiments", "tms_5-2", "--cpu", "--dry-run")
    assert result.returncode == 0, result.stderr
    (script,) = (tmp_path / "runs" / "sweeps").glob("*/scripts/array_000.sbatch")
    assert f"Rendered {script}" in result.stdout
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") and "packaged template job_array.sbatch.j2" in text


@pytest.mark.slurm
def test_installed_spd_sweep_submits_to_slurm(
    installed: Path, tmp_path: Path, slurm_cluster: str
) -> None:
    sweep_file = tmp_path / "short.yaml"
    sweep_file.write_text(yaml.safe_dump({"tms_5-2": SHORT_RUN}))
    result = spd_sweep(
        installed, tmp_path, "--sweep", str(sweep_file), "--cpu", "--time", "10",
        "--poll-interval", "0.5", "--no-create_report",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (summary,) = (tmp_path / "runs" / "sweeps").glob("*/runs/*/summary.json")
    assert summary.is_file()
    (code,) = (tmp_path / "runs" / "sweeps").glob("*/code")
    assert (code / "orchestrator" / "backends" / "slurm" / "templates").is_dir()
