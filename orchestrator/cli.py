"""spd-sweep (also installed as spd-run, the research code's name): the orchestrator's CLI.

The main command expands, validates and submits; subcommands work on existing sweeps
(`status`). New modes (an Optuna search) and subcommands (a report) are added as options of
`main` that pick another launcher, and as `@main.command()`s.
"""

import contextlib
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import matplotlib
from click.core import ParameterSource
from pydantic import ValidationError

from orchestrator.expand import expand_jobs
from orchestrator.launch import SweepDefinition, launch, open_sweep, sweep_dir_of, write_sweep
from orchestrator.local_backend import LocalBackend
from orchestrator.optuna_cli import resume_search, run_search, status_lines
from orchestrator.render import (
    DEFAULT_TEMPLATE,
    TemplateError,
    UnsafeValueError,
    check_sbatch_value,
    resolve_template,
)
from orchestrator.report.cli import create_report, report
from orchestrator.slurm_backend import SlurmBackend
from orchestrator.slurm_resources import SlurmResources
from orchestrator.submit import Backend, SubmissionError
from orchestrator.sweep_dir import JobState, LaunchSettings, Manifest, SweepDir
from orchestrator.sweep_file import SweepFile, SweepFileError, load_sweep_file
from orchestrator.track import progress_text, refresh, state_counts, status_table
from orchestrator.validate import (
    SweepValidationError,
    check_job_count,
    job_count_summary,
    validate_jobs,
)
from spd.config_loading import ConfigError
from spd.dir_lock import DirBusyError
from spd.registry import EXPERIMENTS

REPO_SWEEPS_DIR = Path(__file__).resolve().parent.parent / "sweeps"
DEFAULT_SWEEP = Path("sweeps/default.yaml")
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

JOB_DEFINING_OPTIONS = (
    "experiments",
    "sweep_file",
    "job_suffix",
    "project",
    "cpu",
    "optuna",
    "storage",
)
RESOURCE_OPTIONS = ("partition", "time", "gpus", "cpus_per_task", "mem", "account", "qos")

EXAMPLES = """
\b
Examples:
  spd-sweep --experiments tms_5-2,tms_5-2-id --local    # evaluation runs on this machine
  spd-sweep --experiments resid_mlp3 --n_agents 8       # on SLURM, 8 jobs at a time
  spd-sweep --sweep --n_agents 4 --cpu                  # sweeps/default.yaml, CPU-only jobs
  spd-sweep --experiments tms_5-2 --sweep sweeps/pattern_c_tms_5-2.yaml --dry-run
  spd-sweep --sweep my.yaml --partition gpu --time 2:00:00 --sbatch constraint=a100
  spd-sweep status eval-3fa2b1c0                        # table of job states
  spd-sweep report eval-3fa2b1c0 --title "C sweep"      # (re)build <sweep>/report/index.html
  spd-sweep --resume eval-3fa2b1c0 --retry-failed       # resubmit what has no result
  spd-sweep --optuna sweeps/optuna_tms_5-2.yaml --n_trials 16 --local  # see sweeps/OPTUNA.md
  spd-sweep --resume optuna_tms_5-2-1c9e4d2a --n_trials 32  # continue a search, to 32 trials

\b
Re-running the same command submits only the jobs without a result (failed ones with
--retry-failed); --resume <sweep id> does so from the sweep directory, for searches too.
Sweeps live in $SPD_RUNS_DIR/sweeps/<sweep id> (default ./runs).
"""


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


def resources_from(options: dict[str, Any], base: SlurmResources | None = None) -> SlurmResources:
    values = base.model_dump() if base is not None else {}
    values.update({k: v for k, v in options.items() if v is not None})
    try:
        return SlurmResources(**values)
    except ValidationError as e:
        problems = "; ".join(
            f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise click.UsageError(problems) from None


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


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


SLURM_ONLY_OPTIONS = (*RESOURCE_OPTIONS, "sbatch_flags", "template")
SEARCH_ONLY_OPTIONS = ("n_trials", "storage")


def check_option_combinations(ctx: click.Context, options: dict[str, Any]) -> None:
    """Options that would be ignored in this combination are errors, not silently dropped."""

    def flags(names: tuple[str, ...]) -> str:
        return ", ".join(f"--{name.removesuffix('_flags')}" for name in names if given(ctx, name))

    if options["optuna"] is not None and options["sweep_file"] is not None:
        raise click.UsageError(
            "--sweep (a grid) and --optuna (a search) are two kinds of sweep: give one"
        )
    if options["optuna"] is not None and options["retry_failed"]:
        raise click.UsageError(
            "--retry-failed applies to grid sweeps; a search retries a killed agent's trial by itself"
        )
    if options["optuna"] is None and options["resume_ref"] is None and flags(SEARCH_ONLY_OPTIONS):
        raise click.UsageError(f"{flags(SEARCH_ONLY_OPTIONS)}: only for searches (--optuna FILE)")
    # On --resume they update the stored launch settings, for a later SLURM launch.
    if options["local"] and options["resume_ref"] is None and flags(SLURM_ONLY_OPTIONS):
        raise click.UsageError(
            f"{flags(SLURM_ONLY_OPTIONS)}: SLURM options; --local runs the jobs here and would "
            "ignore them"
        )


@click.group(
    invoke_without_command=True,
    epilog=EXAMPLES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--experiments",
    metavar="A,B",
    help="Registry experiments, comma-separated. Default: those with a section in the "
    "sweep file, else all.",
)
@click.option(
    "--sweep",
    "sweep_file",
    is_flag=False,
    flag_value=str(DEFAULT_SWEEP),
    default=None,
    metavar="[FILE]",
    help=f"Expand a sweep file (alone: {DEFAULT_SWEEP}). Without "
    "--sweep each experiment's config runs once.",
)
@click.option(
    "--n_agents",
    "--n-agents",
    type=click.IntRange(min=1),
    help="At most this many jobs run at once (default: SLURM no cap; local: CPUs).",
)
@click.option("--cpu", is_flag=True, help="Jobs run on CPU and request no GPU.")
@click.option("--job_suffix", "--job-suffix", help="Appended to run names and the SLURM job name.")
@click.option("--project", help="W&B project the runs log to (default: no W&B).")
@click.option("--local", is_flag=True, help="Run on this machine instead of SLURM.")
@click.option(
    "--dry-run",
    "--dry_run",
    "dry_run",
    is_flag=True,
    help="Expand, validate and render; submit nothing.",
)
@click.option("--partition", help="SLURM partition.")
@click.option(
    "--time",
    help="SLURM time limit (default: twice the expected runtime, at most a day; a job that hits "
    "it is requeued and resumes from its checkpoint). No limit: unlimited (0 is refused).",
)
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per job (default 1; 0 with --cpu).")
@click.option(
    "--cpus-per-task",
    "--cpus_per_task",
    "cpus_per_task",
    type=click.IntRange(min=1),
    help="CPUs per job; jobs use them as torch threads.",
)
@click.option("--mem", help="Memory per job, e.g. 8G.")
@click.option("--account", help="SLURM account.")
@click.option("--qos", help="SLURM quality of service.")
@click.option(
    "--sbatch",
    "sbatch_flags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other sbatch flag, e.g. --sbatch constraint=a100. Repeatable.",
)
@click.option(
    "--template",
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="sbatch template: a name in slurm_templates/ or a file.",
)
@click.option("--yes", "-y", is_flag=True, help="Submit sweeps of more than 1,000 jobs.")
@click.option(
    "--resume",
    "resume_ref",
    metavar="SWEEP_ID",
    help="Continue a sweep (or search) as defined: submit its jobs that have no result "
    "(a search's agents, until it has its trials).",
)
@click.option(
    "--retry-failed",
    "--retry_failed",
    "retry_failed",
    is_flag=True,
    help="Also resubmit failed jobs.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the jobs until they finish, with progress.",
)
@click.option(
    "--poll-interval",
    "--poll_interval",
    "poll_interval_s",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds between state checks while waiting.",
)
@click.option(
    "--create_report/--no-create_report",
    "--create-report/--no-create-report",
    "create_report",
    default=True,
    help="End with the sweep's report (<sweep>/report/index.html; W&B too when online). "
    "Default: on.",
)
@click.option("--report_title", "--report-title", "report_title", help="Title of the report.")
@click.option(
    "--optuna",
    metavar="FILE",
    help="Run an Optuna search (sweeps/optuna_*.yaml) with --n_agents agents instead of a grid.",
)
@click.option(
    "--n_trials",
    "--n-trials",
    "n_trials",
    type=click.IntRange(min=1),
    help="Trials of the --optuna search; more, on a re-run or with --resume, extends it.",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Study storage of --optuna (sqlite:///..., postgresql://...). Default: a journal file "
    "in the sweep directory.",
)
@click.pass_context
def main(ctx: click.Context, **options: Any) -> None:
    """Run SPD decompositions of registry experiments: evaluation runs or sweeps, on SLURM
    (job arrays) or locally, tracked in a sweep directory."""
    if ctx.invoked_subcommand is not None:
        return
    check_option_combinations(ctx, options)
    matplotlib.use("Agg")  # the search plots go to files (optuna draws them through pyplot)
    # A terminated orchestrator stops like an interrupted one: local workers are stopped with it.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    # `held` keeps the sweep directory's lock (SweepDir.lock) until the command ends.
    with contextlib.ExitStack() as held:
        try:
            if options["resume_ref"] is not None:
                sweep, settings = resume_sweep(ctx, options, held)
                if sweep.read_meta().kind == "optuna":
                    resume_search(sweep, settings, options, build_backend)
                    return
                manifest = sweep.read_manifest()
            elif options["optuna"] is not None:
                run_search(
                    options,
                    lambda names, label: launch_settings(options, names, label),
                    build_backend,
                    held,
                )
                return
            else:
                sweep, manifest, settings = new_sweep(options, held)
            backend = build_backend(settings, len(manifest.jobs))
            manifest = launch(
                sweep,
                manifest,
                backend,
                settings,
                dry_run=options["dry_run"],
                retry_failed=options["retry_failed"],
                wait=options["wait"],
                poll_interval_s=options["poll_interval_s"],
                echo=click.echo,
            )
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:  # launch() said what happened to the jobs
            sys.exit(130)
        click.echo(f"Sweep directory: {sweep.path}")
        if options["dry_run"]:
            return
        print_results(sweep, manifest)
    if options["create_report"]:
        create_report(sweep, options["report_title"], use_wandb=True, echo=click.echo)
    if not options["wait"]:
        click.echo(f"Follow it with: spd-sweep status {sweep.sweep_id}")
        return
    counts = state_counts(manifest)
    if counts[JobState.FAILED] or counts[JobState.CANCELLED]:
        sys.exit(1)


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def new_sweep(
    options: dict[str, Any], held: contextlib.ExitStack
) -> tuple[SweepDir, Manifest, LaunchSettings]:
    sweep_path = None if options["sweep_file"] is None else Path(options["sweep_file"])
    if sweep_path == DEFAULT_SWEEP and not sweep_path.exists():
        sweep_path = REPO_SWEEPS_DIR / DEFAULT_SWEEP.name
    sweep_file = load_sweep_file(sweep_path) if sweep_path is not None else None
    experiments = parse_experiments(options["experiments"], sweep_file, sweep_path)
    suffix = options["job_suffix"]
    settings = launch_settings(
        options, experiments, "eval" if sweep_path is None else sweep_path.stem
    )
    overrides: dict[str, Any] = {"device": "cpu"} if options["cpu"] else {}
    if options["project"]:
        overrides["wandb_project"] = options["project"]

    jobs = validate_jobs(
        expand_jobs(experiments, sweep_file, overrides, suffix),
        check_device_here=settings.backend == "local",
    )
    click.echo(job_count_summary(jobs))
    check_job_count(len(jobs), options["yes"] or options["dry_run"])

    definition = SweepDefinition(
        kind="evaluation" if sweep_path is None else "grid",
        label="eval" if sweep_path is None else sweep_path.stem,
        jobs=jobs,
        command=["spd-sweep", *sys.argv[1:]],
        sweep_file=sweep_path,
        job_suffix=suffix,
        project=options["project"],
    )
    held.enter_context(sweep_dir_of(definition).lock())
    sweep, manifest = write_sweep(definition)
    return sweep, manifest, settings


def launch_settings(options: dict[str, Any], experiments: list[str], label: str) -> LaunchSettings:
    """How the jobs (or a search's agents) are submitted, from the command line's options."""
    suffix = options["job_suffix"]
    if suffix is not None:
        check_sbatch_value(suffix, "--job_suffix")
    if options["cpu"] and options["gpus"]:
        raise click.UsageError("--cpu asks for no GPU; drop --gpus or --cpu")
    resource_options = {name: options[name] for name in RESOURCE_OPTIONS}
    resource_options["gpus"] = (
        options["gpus"] if options["gpus"] is not None else int(not options["cpu"])
    )
    resource_options["time"] = options["time"] or str(default_time_minutes(experiments))
    settings = LaunchSettings(
        backend="local" if options["local"] else "slurm",
        n_agents=options["n_agents"],
        template=options["template"],
        job_name="-".join(["spd", label] + ([suffix] if suffix else [])),
        resources=resources_from(
            resource_options | {"extra": parse_sbatch_flags(options["sbatch_flags"])}
        ),
    )
    resolve_template(settings.template)  # a missing template fails before anything is written
    return settings


def resume_sweep(
    ctx: click.Context, options: dict[str, Any], held: contextlib.ExitStack
) -> tuple[SweepDir, LaunchSettings]:
    """The sweep (or search) as it was defined, and its launch settings: the stored ones, with
    those given now replacing them. Its lock is entered into `held`."""
    fixed = [name for name in JOB_DEFINING_OPTIONS if given(ctx, name)]
    if fixed:
        flags = ", ".join("--" + name for name in fixed)
        raise click.UsageError(f"--resume continues a sweep as defined; it cannot change {flags}")
    sweep = open_sweep(options["resume_ref"])
    held.enter_context(sweep.lock())
    meta = sweep.read_meta()
    if given(ctx, "n_trials") and meta.kind != "optuna":
        raise click.UsageError(
            f"--n_trials applies to searches (--optuna); {sweep.sweep_id} is not one"
        )
    if options["retry_failed"] and meta.kind == "optuna":
        raise click.UsageError(
            f"--retry-failed applies to grid sweeps; search {sweep.sweep_id} retries a killed "
            "agent's trial by itself"
        )
    stored = meta.launch
    if stored is None:
        raise click.UsageError(f"sweep {sweep.sweep_id} was never submitted: run its command again")
    updates: dict[str, Any] = {}
    if given(ctx, "local"):
        updates["backend"] = "local"
    for name in ("n_agents", "template"):
        if given(ctx, name):
            updates[name] = options[name]
    resource_options = {name: options[name] for name in RESOURCE_OPTIONS if given(ctx, name)}
    if given(ctx, "sbatch_flags"):
        resource_options["extra"] = parse_sbatch_flags(options["sbatch_flags"])
    updates["resources"] = resources_from(resource_options, stored.resources)
    return sweep, stored.model_copy(update=updates)


def print_results(sweep: SweepDir, manifest: Manifest) -> None:
    """Where each run's summary and figures are (the first few), and the state counts."""
    for record in manifest.jobs[:MAX_LISTED_RESULTS]:
        run_dir = sweep.run_dir(record.job_id)
        if record.state == JobState.COMPLETED:
            click.echo(f"{record.name}: {run_dir.summary}  (figures: {run_dir.figures})")
        elif record.state in (JobState.FAILED, JobState.CANCELLED):
            log = sweep.path / record.log_path if record.log_path else "no log"
            click.echo(f"{record.name}: {record.state.value}: {record.error}  (log: {log})")
        else:
            click.echo(f"{record.name}: {record.state.value}")
    if len(manifest.jobs) > MAX_LISTED_RESULTS:
        more = len(manifest.jobs) - MAX_LISTED_RESULTS
        click.echo(f"... and {more} more: spd-sweep status {sweep.sweep_id}")
    click.echo(progress_text(state_counts(manifest)))


@main.command()
@click.argument("sweep_ref", metavar="SWEEP")
def status(sweep_ref: str) -> None:
    """Print the state of every job of a sweep (by id, or a sweep directory)."""
    try:
        sweep = open_sweep(sweep_ref)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    manifest = sweep.read_manifest()
    refresh(sweep, manifest)  # read-only: the sweep's own orchestrator writes the manifest
    meta = sweep.read_meta()
    click.echo(f"Sweep {meta.sweep_id} ({meta.kind}, code {meta.code_version}): {sweep.path}")
    click.echo(status_table(sweep, manifest))
    click.echo(progress_text(state_counts(manifest)))
    if meta.kind == "optuna":
        click.echo("\n".join(status_lines(sweep)))


main.add_command(report)


if __name__ == "__main__":
    main()
