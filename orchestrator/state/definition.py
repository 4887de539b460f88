"""A sweep's definition -> its sweep directory: the id, the configs and the manifest's records.

The sweep id is derived from what the jobs compute (a readable label, the job suffix, and the
hash of all job ids), so running the same command again finds the same sweep directory.
"""

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.state.code_snapshot import code_version
from orchestrator.state.run_tags import run_tags
from orchestrator.state.sweep_dir import JobRecord, Manifest, SweepDir, SweepMeta, sweeps_root
from orchestrator.sweep.validate import ValidatedJob
from spd.atomic_io import atomic_write_text
from spd.yaml_loading import MappingDumper

UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SweepDefinition:
    """Everything that decides which jobs a sweep has."""

    kind: Literal["evaluation", "grid"]
    label: str
    """'eval', or the sweep file's stem."""
    jobs: list[ValidatedJob]
    command: list[str]
    sweep_file: Path | None = None
    job_suffix: str | None = None
    project: str | None = None


def sweep_id_for(label: str, job_suffix: str | None, job_ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(job_ids)).encode()).hexdigest()[:8]
    parts = [label, job_suffix, digest] if job_suffix else [label, digest]
    return "-".join(UNSAFE_ID_CHARACTERS.sub("_", part).strip("_") or "_" for part in parts)


def sweep_dir_of(definition: SweepDefinition) -> SweepDir:
    sweep_id = sweep_id_for(
        definition.label, definition.job_suffix, [j.job_id for j in definition.jobs]
    )
    return SweepDir((sweeps_root() / sweep_id).absolute())


def write_sweep(definition: SweepDefinition) -> tuple[SweepDir, Manifest]:
    """Create the sweep directory, or bring an existing one (same jobs) up to date."""
    sweep = sweep_dir_of(definition)
    sweep_id = sweep.sweep_id
    if sweep.meta_path.exists():
        meta = sweep.read_meta().model_copy(update={"project": definition.project})
    else:
        meta = SweepMeta(
            sweep_id=sweep_id,
            kind=definition.kind,
            command=definition.command,
            code_version=code_version(),
            project=definition.project,
        )
        if definition.sweep_file is not None:
            atomic_write_text(sweep.sweep_file, definition.sweep_file.read_text())
    sweep.write_meta(meta)
    previous = {record.job_id: record for record in sweep.read_manifest().jobs}
    records = []
    dumper = MappingDumper()
    for job in definition.jobs:
        # Run names and tags say where a run logs; they are not part of the job id.
        tracking = {"wandb_run_name": job.name, "wandb_tags": run_tags(sweep_id, job.experiment)}
        write_config(sweep.config_path(job.job_id), dumper.dump(job.config_values | tracking))
        record = previous.get(job.job_id) or JobRecord(
            job_id=job.job_id,
            name=job.name,
            experiment=job.experiment,
        )
        record.name, record.params = job.name, job.params
        record.config_path = sweep.relative_config_path(job.job_id)
        record.run_dir = sweep.relative_run_dir(job.job_id)
        records.append(record)
    manifest = Manifest(jobs=records)
    sweep.write_manifest(manifest)
    return sweep, manifest


def write_config(path: Path, text: str) -> None:
    """A job's config file, unless it already holds `text` (a re-run of the sweep). A new file
    is written in place: no job reads it before the sweep is written and submitted, and a file
    cut short by a kill differs from `text`, so the next run replaces it, atomically, as it
    replaces any existing file that a running job may be reading."""
    try:
        # os.open, not open(): three system calls a file instead of seven, for 10,000 files.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:  # the first config of the sweep
        path.parent.mkdir(parents=True, exist_ok=True)
        write_config(path, text)
        return
    except FileExistsError:
        if path.read_text() != text:
            atomic_write_text(path, text)
        return
    try:
        data = text.encode()
        while data:  # a write may take only part of the data
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
