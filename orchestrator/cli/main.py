"""spd-sweep (also installed as spd-run, the research code's name): the orchestrator's CLI.

One click group. Without a command it runs evaluation runs or a grid sweep (its options are the
group's); its commands start a search (`search`), continue a stored sweep or search (`resume`),
and look at one (`status`, `report`). Each command takes the option sets of
orchestrator.cli.options that make sense for it and builds its one options object from them.

This module only declares the command line: the work is done by orchestrator.cli.sweep and the
stages, imported when a command runs, so that `--help` and usage errors do not load torch and
the training core.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from orchestrator.cli.options import (
    SEARCH_DATA_PARALLEL,
    GridOptions,
    OptionSet,
    ResumeOptions,
    SearchOptions,
    data_parallel_options,
    job_options,
    launch_options,
    n_trials_option,
    resource_options,
    retry_failed_option,
    storage_option,
    sweep_argument,
    sweep_option,
    yes_option,
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
  spd-sweep resume eval-3fa2b1c0 --retry-failed         # resubmit what has no result
  spd-sweep search sweeps/optuna_tms_5-2.yaml --n_trials 16 --local  # see sweeps/OPTUNA.md
  spd-sweep resume optuna_tms_5-2-1c9e4d2a --n_trials 32  # continue a search, to 32 trials

\b
Re-running the same command submits only the jobs without a result (failed ones with
--retry-failed); `spd-sweep resume <sweep id>` does so from the sweep directory, for searches
too. Options of a command go after its name: spd-sweep search FILE --local. Sweeps live in
$SPD_RUNS_DIR/sweeps/<sweep id> (default ./runs).
"""

SEARCH_EXAMPLES = """
\b
Examples:
  spd-sweep search sweeps/optuna_tms_5-2.yaml --n_trials 16 --n_agents 2 --local --cpu
  spd-sweep search sweeps/optuna_resid_mlp3.yaml --n_trials 64 --n_agents 8  # 8 SLURM agents
  spd-sweep search my_search.yaml --n_trials 32 --set steps=2000 --storage sqlite:///study.db
  spd-sweep search sweeps/optuna_tms_5-2.yaml --n_trials 3 --dry-run  # write and render only

\b
Re-running the same command continues the search; a larger --n_trials extends it. The file's
format: sweeps/OPTUNA.md.
"""

RESUME_EXAMPLES = """
\b
Examples:
  spd-sweep resume eval-3fa2b1c0                     # submit the jobs without a result
  spd-sweep resume pc-9d1e0f3a --retry-failed        # failed jobs too
  spd-sweep resume pc-9d1e0f3a --local               # run the rest on this machine instead
  spd-sweep resume pc-9d1e0f3a --partition long --time 2-00:00:00
  spd-sweep resume optuna_tms_5-2-1c9e4d2a --n_trials 32  # extend a search to 32 trials

\b
The sweep runs as defined (its jobs, or its search file and study); the launch options given
replace the ones it was last launched with, for this launch and the next.
"""


class RefusingCommand(click.Command):
    """A command that answers an option it does not take, but that a user may try on it, with
    why (`refused`: flag as typed -> message, where `{flag}` is that flag) instead of click's
    "No such option"."""

    def __init__(self, *args: Any, refused: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused = refused

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            if e.option_name not in self.refused:
                raise
            message = self.refused[e.option_name].format(flag=e.option_name)
            raise click.UsageError(message, ctx) from None


class SweepGroup(RefusingCommand, click.Group):
    """The `spd-sweep` group: a RefusingCommand whose commands --help lists in the order
    declared."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def flags_of(option_set: OptionSet) -> list[str]:
    """Every spelling of the options an option set declares."""
    command = click.command()(option_set(lambda **_: None))
    return [flag for param in command.params for flag in (*param.opts, *param.secondary_opts)]


def refused(message: str, *option_sets: OptionSet) -> dict[str, str]:
    """Each spelling of the options of `option_sets` -> `message`."""
    return {flag: message for option_set in option_sets for flag in flags_of(option_set)}


new_search_n_trials = n_trials_option(
    required=True, help="Trials of the search; more, on a re-run or with `resume`, extends it."
)

GRID_REFUSED = {
    # The spellings of spd-sweep before `search` and `resume` were commands.
    "--optuna": "--optuna FILE is now a command: spd-sweep search FILE --n_trials N [OPTIONS]",
    "--resume": "--resume SWEEP_ID is now a command: spd-sweep resume SWEEP_ID [OPTIONS]",
    **refused(
        "{flag}: only for searches: spd-sweep search FILE {flag} ...",
        new_search_n_trials,
        storage_option,
    ),
}
SEARCH_REFUSED = {
    **refused(SEARCH_DATA_PARALLEL, data_parallel_options),
    **refused(
        "--retry-failed applies to grid sweeps; a search retries a killed agent's trial by itself",
        retry_failed_option,
    ),
    **refused(
        "--sweep (a grid) and `search` (a search) are two kinds of sweep: give one", sweep_option
    ),
}
RESUME_REFUSED = refused(
    "spd-sweep resume continues a sweep as defined; it cannot change {flag}",
    job_options,
    sweep_option,
    storage_option,
)


@click.group(
    cls=SweepGroup,
    refused=GRID_REFUSED,
    invoke_without_command=True,
    # Options go with the grid, or after a command's name: not both.
    subcommand_metavar="| COMMAND [ARGS]...",
    epilog=EXAMPLES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@sweep_option
@job_options
@launch_options
@resource_options
@data_parallel_options
@yes_option
@retry_failed_option
@click.pass_context
def main(ctx: click.Context, **params: Any) -> None:
    """Run SPD decompositions of registry experiments, on SLURM (job arrays) or locally, tracked
    in a sweep directory. Without a command: evaluation runs, or a grid sweep (--sweep), with the
    options below. The commands start an Optuna search, resume a sweep, or show one."""
    if ctx.invoked_subcommand is not None:
        # The group parses what comes before the command's name: such options are not the
        # command's, and would be dropped.
        source = ctx.get_parameter_source
        given = [p for p in ctx.command.params if source(p.name) == ParameterSource.COMMANDLINE]
        if given:
            flags = " ".join(p.opts[0] for p in given)
            raise click.UsageError(
                f"{flags} before `{ctx.invoked_subcommand}`: a command's options go after its "
                f"name (spd-sweep {ctx.invoked_subcommand} ... {flags})"
            )
        return
    options = GridOptions.from_click(ctx, params)
    options.launch.check_new_launch()
    from orchestrator.cli.sweep import run_grid_command

    run_grid_command(options)


@main.command(
    cls=RefusingCommand,
    refused=SEARCH_REFUSED,
    epilog=SEARCH_EXAMPLES,
    short_help="Run an Optuna search of FILE's space, with --n_agents agents.",
)
@click.argument("search_file", metavar="FILE")
@new_search_n_trials
@storage_option
@job_options
@launch_options
@resource_options
@click.pass_context
def search(ctx: click.Context, **params: Any) -> None:
    """Run an Optuna search (FILE: sweeps/optuna_*.yaml, see sweeps/OPTUNA.md): --n_agents
    agents share one study, each running trials until the study has --n_trials."""
    options = SearchOptions.from_click(ctx, params)
    options.launch.check_new_launch()
    from orchestrator.cli.sweep import run_search_command

    run_search_command(options)


@main.command(
    cls=RefusingCommand,
    refused=RESUME_REFUSED,
    epilog=RESUME_EXAMPLES,
    short_help="Continue a sweep or search: submit what has no result.",
)
@click.argument("sweep_ref", metavar="SWEEP_ID")
@retry_failed_option
@n_trials_option(required=False, help="A search: extend it to this many trials.")
@launch_options
@resource_options
@data_parallel_options
@click.pass_context
def resume(ctx: click.Context, **params: Any) -> None:
    """Continue a sweep or search (by id, or a sweep directory) as defined: submit its jobs that
    have no result (a search's agents, until it has its trials)."""
    options = ResumeOptions.from_click(ctx, params)
    from orchestrator.cli.sweep import run_resume_command

    run_resume_command(options)


@main.command(short_help="Print the state of every job of a sweep.")
@sweep_argument
def status(sweep: "SweepDir") -> None:
    """Print the state of every job of a sweep (by id, or a sweep directory)."""
    from orchestrator.cli.sweep import print_status

    print_status(sweep)


main.add_command(report)


if __name__ == "__main__":
    main()
