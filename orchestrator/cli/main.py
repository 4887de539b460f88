"""spd-sweep (also installed as spd-run, the research code's name): the orchestrator's CLI.

The main command expands, validates and submits; subcommands work on existing sweeps
(`status`, `report`). New modes (an Optuna search) and subcommands are added as options of
`main` that pick another launcher, and as `@main.command()`s.

This module only declares the command line: the work is done by orchestrator.cli.sweep and the
stages, imported when a command runs, so that `--help` and usage errors do not load torch and
the training core.
"""

from typing import TYPE_CHECKING, Any

import click

from orchestrator.backends.slurm.render import DEFAULT_TEMPLATE
from orchestrator.cli.options import (
    DEFAULT_SWEEP,
    LOCAL_DATA_PARALLEL,
    RESOURCE_OPTIONS,
    SEARCH_DATA_PARALLEL,
    SweepOptions,
    flag_of,
    sweep_argument,
)
from orchestrator.cli.report import report

if TYPE_CHECKING:
    from orchestrator.state.sweep_dir import SweepDir

EXAMPLES = """
\b
Examples:
  spd-sweep --experiments tms_5-2,tms_5-2-id --local    # evaluation runs on this machine
  spd-sweep --experiments resid_mlp3 --n_agents 8       # on SLURM, 8 jobs at a time
  spd-sweep --sweep --n_agents 4 --cpu                  # sweeps/default.yaml, CPU-only jobs
  spd-sweep --experiments tms_5-2 --sweep sweeps/pattern_c_tms_5-2.yaml --dry-run
  spd-sweep --sweep my.yaml --partition gpu --time 2:00:00 --sbatch constraint=a100
  spd-sweep --sweep my.yaml --set steps=2000 --set seed=3 --dry-run  # every job
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

SLURM_ONLY_OPTIONS = (*RESOURCE_OPTIONS, "sbatch_flags", "template")
SEARCH_ONLY_OPTIONS = ("n_trials", "storage")


def check_option_combinations(options: SweepOptions) -> None:
    """Options that would be ignored in this combination are errors, not silently dropped."""

    def flags(names: tuple[str, ...]) -> str:
        return ", ".join(flag_of(name) for name in options.given(*names))

    if options.optuna is not None and options.sweep_file is not None:
        raise click.UsageError(
            "--sweep (a grid) and --optuna (a search) are two kinds of sweep: give one"
        )
    if options.world_size() > 1 and options.local:
        raise click.UsageError(LOCAL_DATA_PARALLEL)
    if options.world_size() > 1 and options.optuna is not None:
        raise click.UsageError(SEARCH_DATA_PARALLEL)
    if options.optuna is not None and options.retry_failed:
        raise click.UsageError(
            "--retry-failed applies to grid sweeps; a search retries a killed agent's trial by itself"
        )
    if options.optuna is None and options.resume_ref is None and flags(SEARCH_ONLY_OPTIONS):
        raise click.UsageError(f"{flags(SEARCH_ONLY_OPTIONS)}: only for searches (--optuna FILE)")
    # On --resume they update the stored launch settings, for a later SLURM launch.
    if options.local and options.resume_ref is None and flags(SLURM_ONLY_OPTIONS):
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
@click.option(
    "--set",
    "set_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a config key in every job (a search: in every trial), as spd-decompose --set does, "
    "e.g. --set steps=2000. Repeatable; part of what the sweep is.",
)
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
    help="CPUs per job, used as torch threads (default: what the experiment uses well).",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    help="Nodes per job (default 1): each job is one decomposition, data parallel over "
    "--nodes x --nproc-per-node processes (torchrun under srun).",
)
@click.option(
    "--nproc-per-node",
    "--nproc_per_node",
    "nproc_per_node",
    type=click.IntRange(min=1),
    help="Processes per node of each job (default 1), one GPU each (--gpus, per node, defaults "
    "to it). The config's batch_size is the global batch: it must divide by all processes.",
)
@click.option("--mem", help="Memory per job, e.g. 8G (default: what the experiment needs).")
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
    help="sbatch template: a file, or the name of a packaged one.",
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
def main(ctx: click.Context, **params: Any) -> None:
    """Run SPD decompositions of registry experiments: evaluation runs or sweeps, on SLURM
    (job arrays) or locally, tracked in a sweep directory."""
    if ctx.invoked_subcommand is not None:
        return
    options = SweepOptions.from_click(ctx, params)
    check_option_combinations(options)
    from orchestrator.cli.sweep import run_sweep_command

    run_sweep_command(options)


@main.command()
@sweep_argument
def status(sweep: "SweepDir") -> None:
    """Print the state of every job of a sweep (by id, or a sweep directory)."""
    from orchestrator.cli.sweep import print_status

    print_status(sweep)


main.add_command(report)


if __name__ == "__main__":
    main()
