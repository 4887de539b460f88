"""What `spd-sweep`'s commands do: a new evaluation run or grid sweep (`run_grid_command`), a
new search (`run_search_command`) or `spd-sweep resume` of a stored sweep or search
(`run_resume_command`), launched and followed; the searches' part is in orchestrator.cli.search.

orchestrator.cli.main imports this module when a command runs, not for `--help`; this module
imports orchestrator.cli.search (optuna, its plots) only for searches.
"""

import contextlib
import math
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from orchestrator.backends.base import Backend, SubmissionError
from orchestrator.backends.launch import launch
from orchestrator.backends.local import LocalBackend
from orchestrator.backends.slurm.backend import SlurmBackend
from orchestrator.backends.slurm.render import TemplateError, resolve_template
from orchestrator.backends.track import progress_text, refresh, state_counts, status_table
from orchestrator.cli.options import (
    DEFAULT_SWEEP,
    LOCAL_DATA_PARALLEL,
    SEARCH_DATA_PARALLEL,
    GridOptions,
    JobOptions,
    LaunchOptions,
    ResumeOptions,
    SearchOptions,
)
from orchestrator.cli.report import create_report
from orchestrator.state.definition import SweepDefinition, sweep_dir_of, write_sweep
from orchestrator.state.sweep_dir import (
    JobState,
    LaunchSettings,
    Manifest,
    SweepDir,
    now,
    open_sweep,
)
from orchestrator.sweep.expand import expand_jobs
from orchestrator.sweep.file import SweepFile, SweepFileError, load_sweep_file
from orchestrator.sweep.resources import (
    SlurmResources,
    UnsafeValueError,
    check_sbatch_value,
    mem_megabytes,
)
from orchestrator.sweep.validate import (
    SweepValidationError,
    check_job_count,
    job_count_summary,
    validate_jobs,
)
from spd.batch_split import check_batch_split
from spd.config_loading import ConfigError, error_message
from spd.dir_lock import DirBusyError
from spd.metric_names import TARGET_CI_ERROR, metric_name
from spd.registry import EXPERIMENTS
from spd.run_summary import RunSummary

REPO_SWEEPS_DIR = Path(__file__).resolve().parents[2] / "sweeps"
MIN_DEFAULT_TIME_MIN = 10
MAX_DEFAULT_TIME_MIN = 24 * 60
"""Longer jobs (the hub LMs on CPU) hit this limit, are requeued and go on from their checkpoint:
a one-day limit is one clusters accept, unlike the months such a job would take."""
MAX_LISTED_RESULTS = 20

USER_ERRORS = (
    ConfigError,
    DirBusyError,
    SweepFileError,
    SweepValidationError,
    TemplateError,
    UnsafeValueError,
    SubmissionError,
    FileNotFoundError,
)


def parse_sbatch_flags(flags: tuple[str, ...]) -> dict[str, str]:
    """('constraint=a100', 'exclusive') -> {'constraint': 'a100', 'exclusive': ''}."""
    extra = {}
    for flag in flags:
        key, _, value = flag.partition("=")
        extra[key.strip().removeprefix("--").replace("_", "-")] = value
    return extra


def default_time_minutes(experiments: list[str]) -> int:
    """Twice the slowest experiment's expected runtime, within [10 min, 1 day]: room to spare,
    and jobs that still hit the limit are requeued and resume from their checkpoint."""
    slowest = max(EXPERIMENTS[name].expected_runtime_min for name in experiments)
    return min(MAX_DEFAULT_TIME_MIN, max(MIN_DEFAULT_TIME_MIN, math.ceil(2 * slowest)))


def default_cpus(experiments: list[str]) -> int:
    """The most CPUs any of the experiments uses well (spd.registry): jobs use them as threads."""
    return max(EXPERIMENTS[name].cpus for name in experiments)


def default_mem(experiments: list[str]) -> str:
    """The most memory any of the experiments needs (spd.registry)."""
    return max((EXPERIMENTS[name].mem for name in experiments), key=mem_megabytes)


def resources_from(values: dict[str, Any], base: SlurmResources | None = None) -> SlurmResources:
    """`base` (or the defaults) with the given values (None: not given) replacing its own."""
    merged = base.model_dump() if base is not None else {}
    merged.update({k: v for k, v in values.items() if v is not None})
    try:
        return SlurmResources(**merged)
    except ValidationError as e:
        raise click.UsageError("; ".join(resource_problem(err) for err in e.errors())) from None


def resource_problem(error: ErrorDetails) -> str:
    """A SlurmResources error as the option that set the value; --sbatch's (field `extra`) name
    their flag themselves."""
    message = error_message(error)
    if not error["loc"]:  # a check of several fields, whose message names their options
        return message
    field = str(error["loc"][0])
    return message if field == "extra" else f"--{field.replace('_', '-')}: {message}"


def parse_experiments(
    text: str | None, sweep_file: SweepFile | None, sweep_path: Path | None
) -> list[str]:
    """The experiments of `--experiments` (default: the sweep file's sections, else all), each
    of which the sweep file, when there is one, must set something for."""
    if text is None:
        names = list(sweep_file.experiments) if sweep_file is not None else []
        return check_covered(names or list(EXPERIMENTS), sweep_file, sweep_path)
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown or not names:
        given_names = ", ".join(unknown) or "(none given)"
        raise click.UsageError(
            f"unknown experiment(s) {given_names}; known: {', '.join(EXPERIMENTS)}"
        )
    return check_covered(names, sweep_file, sweep_path)


def check_covered(
    names: list[str], sweep_file: SweepFile | None, sweep_path: Path | None
) -> list[str]:
    """`names`, unless the sweep file sets nothing for some of them: such an experiment would
    run its registry config unchanged, as if it were not part of the sweep."""
    if sweep_file is None:
        return names
    uncovered = sweep_file.uncovered(names)
    if uncovered:
        sections = ", ".join(sweep_file.sections()) or "none"
        raise click.UsageError(
            f"sweep file {sweep_path} has no section for {', '.join(uncovered)} and no `global:` "
            f"section (its sections: {sections}): add a section for each, or `global:`, or leave "
            "them out of --experiments"
        )
    return names


def build_backend(settings: LaunchSettings, n_jobs: int) -> Backend:
    if settings.backend == "local":
        cpus = len(os.sched_getaffinity(0))
        n_agents = settings.n_agents or min(n_jobs, cpus) or 1
        return LocalBackend(n_agents, threads_per_job=max(1, cpus // n_agents))
    return SlurmBackend(
        resolve_template(settings.template),
        settings.job_name,
        settings.resources,
        settings.n_agents,
        workdir=Path.cwd(),
    )


@contextlib.contextmanager
def sweep_command() -> Iterator[contextlib.ExitStack]:
    """What every command that launches runs in: user errors end it with their message, an
    interruption (or SIGTERM, which stops local workers as Ctrl-C does) with exit code 130, and
    the sweep directory's lock (SweepDir.lock), entered into the stack it yields, is kept until
    the block ends."""
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with contextlib.ExitStack() as held:
        try:
            yield held
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:  # launch() said what happened to the jobs
            sys.exit(130)


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_grid_command(options: GridOptions) -> None:
    """`spd-sweep [OPTIONS]`: a new evaluation run or grid sweep, launched, followed, reported.
    Exits 1 when jobs failed, 130 when interrupted."""
    with sweep_command() as held:
        sweep, manifest, settings = new_sweep(options, held)
        manifest = launch_jobs(sweep, manifest, settings, options.launch, options.retry_failed)
    if not options.launch.dry_run:
        finish(sweep, manifest, options.launch)


def run_search_command(options: SearchOptions) -> None:
    """`spd-sweep search FILE`: a new search (or the same command again), launched, followed,
    reported."""
    from orchestrator.cli.search import run_search

    with sweep_command() as held:
        run_search(
            options,
            lambda names, label: launch_settings(options.jobs, options.launch, names, label),
            build_backend,
            held,
        )


def run_resume_command(options: ResumeOptions) -> None:
    """`spd-sweep resume SWEEP_ID`: a stored sweep or search, launched again with its stored
    launch settings (those given now replacing them), followed, reported."""
    with sweep_command() as held:
        sweep, settings = resume_sweep(options, held)
        if sweep.read_meta().kind == "optuna":
            from orchestrator.cli.search import resume_search

            resume_search(sweep, settings, options, build_backend)
            return
        manifest = launch_jobs(
            sweep, sweep.read_manifest(), settings, options.launch, options.retry_failed
        )
    if not options.launch.dry_run:
        finish(sweep, manifest, options.launch)


def launch_jobs(
    sweep: SweepDir,
    manifest: Manifest,
    settings: LaunchSettings,
    options: LaunchOptions,
    retry_failed: bool,
) -> Manifest:
    """Submit the sweep's jobs that have no result (the failed ones too with `retry_failed`),
    follow them (unless --no-wait), and say what they found."""
    manifest = launch(
        sweep,
        manifest,
        build_backend(settings, len(manifest.jobs)),
        settings,
        dry_run=options.dry_run,
        retry_failed=retry_failed,
        wait=options.wait,
        poll_interval_s=options.poll_interval_s,
        echo=click.echo,
    )
    click.echo(f"Sweep directory: {sweep.path}")
    if not options.dry_run:
        print_results(sweep, manifest)
    return manifest


def finish(sweep: SweepDir, manifest: Manifest, options: LaunchOptions) -> None:
    """The sweep's report, and the exit code (1 when jobs failed) once they finished."""
    if options.create_report:
        create_report(sweep, options.report_title, use_wandb=None, echo=click.echo)
    if not options.wait:
        click.echo(f"Follow it with: spd-sweep status {sweep.sweep_id}")
        return
    counts = state_counts(manifest)
    if counts[JobState.FAILED] or counts[JobState.CANCELLED]:
        sys.exit(1)


def new_sweep(
    options: GridOptions, held: contextlib.ExitStack
) -> tuple[SweepDir, Manifest, LaunchSettings]:
    sweep_path = None if options.sweep_file is None else Path(options.sweep_file)
    if sweep_path == DEFAULT_SWEEP and not sweep_path.exists():
        sweep_path = REPO_SWEEPS_DIR / DEFAULT_SWEEP.name
    sweep_file = load_sweep_file(sweep_path) if sweep_path is not None else None
    experiments = parse_experiments(options.jobs.experiments, sweep_file, sweep_path)
    label = "eval" if sweep_path is None else sweep_path.stem
    settings = launch_settings(options.jobs, options.launch, experiments, label)
    jobs = validate_jobs(
        expand_jobs(experiments, sweep_file, options.jobs.overrides(), options.jobs.job_suffix),
        check_device_here=settings.backend == "local",
        world_size=settings.resources.world_size,
    )
    click.echo(job_count_summary(jobs))
    check_job_count(len(jobs), options.yes or options.launch.dry_run)

    definition = SweepDefinition(
        kind="evaluation" if sweep_path is None else "grid",
        label=label,
        jobs=jobs,
        command=list(options.launch.command),
        sweep_file=sweep_path,
        job_suffix=options.jobs.job_suffix,
        project=options.jobs.project,
    )
    held.enter_context(sweep_dir_of(definition).lock())
    sweep, manifest = write_sweep(definition)
    return sweep, manifest, settings


def launch_settings(
    jobs: JobOptions, options: LaunchOptions, experiments: list[str], label: str
) -> LaunchSettings:
    """How the jobs (or a search's agents) are submitted, from the command line's options."""
    suffix = jobs.job_suffix
    if suffix is not None:
        check_sbatch_value(suffix, "--job_suffix")
    resources = options.resources
    if jobs.cpu and resources.gpus:
        raise click.UsageError("--cpu asks for no GPU; drop --gpus or --cpu")
    settings = LaunchSettings(
        backend="local" if options.local else "slurm",
        n_agents=options.n_agents,
        template=options.template,
        job_name="-".join(["spd", label] + ([suffix] if suffix else [])),
        command=list(options.command),
        resources=resources_from(
            resources.slurm_fields()
            | {
                # One GPU per process (of a node): 1 unless --nproc-per-node says more.
                "gpus": resources.gpus
                if resources.gpus is not None
                else int(not jobs.cpu) * (resources.nproc_per_node or 1),
                "time": resources.time or str(default_time_minutes(experiments)),
                "cpus_per_task": resources.cpus_per_task or default_cpus(experiments),
                "mem": resources.mem or default_mem(experiments),
                "extra": parse_sbatch_flags(options.sbatch_flags),
            }
        ),
    )
    resolve_template(settings.template)  # a missing template fails before anything is written
    return settings


def resume_sweep(
    options: ResumeOptions, held: contextlib.ExitStack
) -> tuple[SweepDir, LaunchSettings]:
    """The sweep (or search) as it was defined, and its launch settings: the stored ones, with
    those given now replacing them. Its lock is entered into `held`. (What defines the jobs is
    not an option of `resume`: orchestrator.cli.main refuses it.)"""
    sweep = open_sweep(options.sweep_ref)
    held.enter_context(sweep.lock())
    meta = sweep.read_meta()
    if options.n_trials is not None and meta.kind != "optuna":
        raise click.UsageError(f"--n_trials applies to searches; {sweep.sweep_id} is not one")
    if options.retry_failed and meta.kind == "optuna":
        raise click.UsageError(
            f"--retry-failed applies to grid sweeps; search {sweep.sweep_id} retries a killed "
            "agent's trial by itself"
        )
    stored = meta.launch
    if stored is None:
        raise click.UsageError(f"sweep {sweep.sweep_id} was never submitted: run its command again")
    settings = stored.model_copy(update=launch_updates(options.launch, stored))
    check_resumed_data_parallel(sweep, settings, meta.kind)
    return sweep, settings


def check_resumed_data_parallel(sweep: SweepDir, settings: LaunchSettings, kind: str) -> None:
    """The checks of a new sweep's --nodes/--nproc-per-node, for the settings `resume` runs
    with (stored, or changed on its command line): a job in several processes runs on SLURM,
    is no search's trial, and has a batch_size its processes split evenly."""
    world_size = settings.resources.world_size
    if world_size == 1:
        return
    if settings.backend == "local":
        raise click.UsageError(LOCAL_DATA_PARALLEL)
    if kind == "optuna":
        raise click.UsageError(SEARCH_DATA_PARALLEL)
    for record in sweep.read_manifest().jobs:
        config = yaml.safe_load(sweep.config_path(record.job_id).read_text())
        try:
            check_batch_split(int(config["batch_size"]), world_size)
        except ConfigError as e:
            raise click.UsageError(f"job {record.name}: {e}") from None


def launch_updates(options: LaunchOptions, stored: LaunchSettings) -> dict[str, Any]:
    """The LaunchSettings fields that the options given on this command line change, and the
    command and time of this launch."""
    updates: dict[str, Any] = {"command": list(options.command), "started": now()}
    if options.given("local"):
        updates["backend"] = "local"
    if options.given("n_agents"):
        updates["n_agents"] = options.n_agents
    if options.given("template"):
        updates["template"] = options.template
    resources = {
        name: value
        for name, value in options.resources.slurm_fields().items()
        if options.given(name)
    }
    if options.given("sbatch_flags"):
        resources["extra"] = parse_sbatch_flags(options.sbatch_flags)
    updates["resources"] = resources_from(resources, stored.resources)
    return updates


def findings(summary: RunSummary) -> str:
    """What a run found, in the terms of the paper's success criteria: alive components per
    module against C, and (toy models) the distance from the known solution."""
    alive = ", ".join(
        f"{path} {module.alive:g} of {module.C}"
        for path, module in summary.modules.items()
        if module.alive is not None
    )
    parts = [f"alive components: {alive}"] if alive else []
    error = summary.metrics.get(metric_name(TARGET_CI_ERROR))
    if error is not None:
        parts.append(
            "target-CI error 0: the known solution"
            if error == 0
            else f"target-CI error {error:g} (0 is the known solution)"
        )
    return "; ".join(parts) or "completed"


def print_results(sweep: SweepDir, manifest: Manifest) -> None:
    """What each run found and where its summary and figures are (the first few), and the state
    counts."""
    for record in manifest.jobs[:MAX_LISTED_RESULTS]:
        run_dir = sweep.run_dir(record.job_id)
        if record.state == JobState.COMPLETED and run_dir.is_complete():
            click.echo(f"{record.name}: {findings(RunSummary.read(run_dir.summary))}")
            click.echo(f"    {run_dir.summary}  (figures: {run_dir.figures})")
        elif record.state in (JobState.FAILED, JobState.CANCELLED):
            log = sweep.path / record.log_path if record.log_path else "no log"
            click.echo(f"{record.name}: {record.state.value}: {record.error}  (log: {log})")
        else:
            click.echo(f"{record.name}: {record.state.value}")
    if len(manifest.jobs) > MAX_LISTED_RESULTS:
        more = len(manifest.jobs) - MAX_LISTED_RESULTS
        click.echo(f"... and {more} more: spd-sweep status {sweep.sweep_id}")
    click.echo(progress_text(state_counts(manifest)))


def print_status(sweep: SweepDir) -> None:
    """`spd-sweep status`: the state of every job of the sweep, and a search's study."""
    manifest = sweep.read_manifest()
    refresh(sweep, manifest)  # read-only: the sweep's own orchestrator writes the manifest
    meta = sweep.read_meta()
    click.echo(f"Sweep {meta.sweep_id} ({meta.kind}, code {meta.code_version}): {sweep.path}")
    click.echo(status_table(sweep, manifest))
    click.echo(progress_text(state_counts(manifest)))
    if meta.kind == "optuna":
        from orchestrator.cli.search import status_lines

        click.echo("\n".join(status_lines(sweep)))
