"""The layout of a sweep directory and its manifest: the single source of truth of a sweep.

    <runs root>/sweeps/<sweep id>/
        sweep.yaml        the sweep (or Optuna search) file as given; absent for evaluation runs
        meta.json         SweepMeta: id, kind, creating command, code version, creation time,
                          title, and every launch (its command, time and settings)
        manifest.json     Manifest: every job, its params, state, attempts, SLURM id, paths
        code/             snapshot of the packages the jobs run (code as of submission)
        configs/<job>.yaml  each job's resolved, validated config
        scripts/          rendered sbatch scripts (array_000.sbatch, ...)
        logs/             submitit's job files and logs: <slurm id>_0_log.out for SLURM jobs,
                          <job>.<attempt>/<pid>_0_log.out for local ones; array_000/<task>.pkl:
                          an array's calls, written before sbatch, until its tasks start
        runs/<job>/       each job's run directory (layout: spd.run_dir.RunDir)
        study.journal     Optuna journal storage (kind "optuna")
        report/           the HTML report (index.html and its PNGs)

A job is completed exactly when its run directory holds summary.json (a search agent, which has
no run directory, when its process returned); the manifest's state is the
orchestrator's record of everything else (submitted, running, failed, with the error and log).
All writes are atomic (write a temp file, rename over).
"""

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.sweep.resources import SlurmResources
from spd.atomic_io import atomic_write_text
from spd.dir_lock import DirLock
from spd.run_dir import RunDir, runs_root


class JobState(StrEnum):
    PENDING = "pending"      # expanded and validated, not submitted yet
    SUBMITTING = "submitting"  # SLURM: its array's sbatch is under way, or was interrupted
    SUBMITTED = "submitted"  # handed to SLURM or the local pool
    RUNNING = "running"
    COMPLETED = "completed"  # its run directory has summary.json (an agent: it returned)
    FAILED = "failed"        # raised, or SLURM reported FAILED/TIMEOUT/OOM...
    CANCELLED = "cancelled"


class ArrayTask(BaseModel):
    """A job's place in a SLURM array, recorded before sbatch so that an interrupted submission
    is found again (orchestrator.backends.slurm.submissions)."""

    model_config = ConfigDict(extra="forbid")

    script: str = Field(description="The array's sbatch script, relative to the sweep.")
    index: int = Field(description="The job's task in the array.")


class JobRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(description="Stable id: hash of the job's resolved config.")
    name: str = Field(description="Readable name from the experiment and swept values.")
    experiment: str
    params: dict[str, Any] = Field(default_factory=dict, description="Swept values, dotted keys.")
    state: JobState = JobState.PENDING
    attempts: int = 0
    slurm_job_id: str | None = None
    array_task: ArrayTask | None = Field(None, description="Its last SLURM submission.")
    log_path: str | None = Field(None, description="Relative to the sweep directory.")
    error: str | None = None
    backend: Literal["slurm", "local"] | None = Field(None, description="Where it last ran.")
    local_job_id: str | None = Field(None, description="Process id of a local (--local) job.")
    config_path: str | None = Field(None, description="Resolved config, relative to the sweep.")
    run_dir: str | None = Field(None, description="Run directory, relative to the sweep.")

    @property
    def scheduler_id(self) -> str | None:
        """The id submitit knows the last attempt by: SLURM job id or local process id."""
        return self.slurm_job_id if self.backend == "slurm" else self.local_job_id


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class LaunchSettings(BaseModel):
    """How one command submitted the sweep's jobs; `spd-sweep resume` submits as the last one
    did (with the options it is given replacing these)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["slurm", "local"]
    n_agents: int | None = Field(None, description="Most jobs running at once; None: no cap.")
    template: str = Field(description="sbatch template (a packaged one's name, or a path).")
    job_name: str = Field(description="SLURM job name of the sweep's arrays.")
    resources: SlurmResources = Field(default_factory=SlurmResources)
    command: list[str] = Field(default_factory=list, description="The command that launched.")
    started: str = Field(default_factory=now)


class SweepMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep_id: str
    kind: Literal["evaluation", "grid", "optuna"]
    command: list[str]
    code_version: str = Field(description="git commit (with '-dirty' when modified) or 'unknown'.")
    created: str = Field(default_factory=now)
    title: str | None = None
    project: str | None = Field(None, description="W&B project the runs log to.")
    launches: list[LaunchSettings] = Field(
        default_factory=list, description="Every command that submitted jobs, oldest first."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_launch_of_older_sweeps(cls, data: Any) -> Any:
        """Sweeps written before the history kept only their last launch, as `launch`."""
        if isinstance(data, dict) and "launch" in data:
            data = dict(data)
            last = data.pop("launch")
            data.setdefault("launches", [last] if last is not None else [])
        return data

    @property
    def launch(self) -> LaunchSettings | None:
        """How the jobs were last submitted."""
        return self.launches[-1] if self.launches else None

    @property
    def last_command(self) -> list[str]:
        """The last command that submitted jobs, else the one that created the sweep."""
        return self.launch.command if self.launch and self.launch.command else self.command


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobRecord] = Field(default_factory=list)

    def job(self, job_id: str) -> JobRecord:
        return next(j for j in self.jobs if j.job_id == job_id)


CONFIGS_DIR = "configs"
RUNS_DIR = "runs"


def sweeps_root() -> Path:
    return runs_root() / "sweeps"


@dataclass(frozen=True)
class SweepDir:
    path: Path

    @classmethod
    def for_id(cls, sweep_id: str) -> "SweepDir":
        return cls(sweeps_root() / sweep_id)

    def lock(self) -> DirLock:
        """Held by the one orchestrator that writes and submits this sweep (spd.dir_lock): a
        second one on the same sweep is refused, naming the holder."""
        return DirLock(self.path, "sweep")

    @property
    def sweep_id(self) -> str:
        return self.path.name

    @property
    def sweep_file(self) -> Path:
        return self.path / "sweep.yaml"

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def code(self) -> Path:
        return self.path / "code"

    @property
    def configs(self) -> Path:
        return self.path / CONFIGS_DIR

    @property
    def scripts(self) -> Path:
        return self.path / "scripts"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def study_journal(self) -> Path:
        return self.path / "study.journal"

    @property
    def report(self) -> Path:
        return self.path / "report"

    def config_path(self, job_id: str) -> Path:
        return self.path / self.relative_config_path(job_id)

    def run_dir(self, job_id: str) -> RunDir:
        return RunDir(self.path / self.relative_run_dir(job_id))

    # Relative paths as plain strings: a 10,000-job sweep records two per job, and pathlib's
    # parsing was a good part of writing it.
    @staticmethod
    def relative_config_path(job_id: str) -> str:
        return f"{CONFIGS_DIR}/{job_id}.yaml"

    @staticmethod
    def relative_run_dir(job_id: str) -> str:
        return f"{RUNS_DIR}/{job_id}"

    def relative(self, path: Path) -> str:
        """A path inside the sweep directory as the manifest records it."""
        return str(path.relative_to(self.path))

    # --- meta and manifest, read and written whole and atomically
    def read_meta(self) -> SweepMeta:
        return SweepMeta.model_validate_json(self.meta_path.read_text())

    def write_meta(self, meta: SweepMeta) -> None:
        atomic_write_text(self.meta_path, meta.model_dump_json(indent=2) + "\n")

    def read_manifest(self) -> Manifest:
        if not self.manifest_path.exists():
            return Manifest()
        return Manifest.model_validate_json(self.manifest_path.read_text())

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write_text(self.manifest_path, manifest.model_dump_json(indent=2) + "\n")


def open_sweep(sweep_ref: str) -> SweepDir:
    """A sweep by id (under the runs root) or by path."""
    for candidate in (Path(sweep_ref), sweeps_root() / sweep_ref):
        if (candidate / "meta.json").is_file():
            return SweepDir(candidate.absolute())
    known = sorted(p.name for p in sweeps_root().glob("*") if (p / "meta.json").is_file())
    raise FileNotFoundError(
        f"no sweep {sweep_ref!r} under {sweeps_root().absolute()}"
        + (f"; sweeps there: {', '.join(known)}" if known else "")
    )
