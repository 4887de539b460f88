"""The options of `spd-sweep`'s commands, each declared once, and what a command was asked, as one
typed object per command (`GridOptions`, `SearchOptions`, `ResumeOptions`) made of shared parts:
`JobOptions` (what the jobs are), `LaunchOptions` (where and how they run, and what the command
does meanwhile) and its `ResourceOptions` (what each SLURM job asks for).

The decorators `job_options`, `launch_options`, `resource_options` and `data_parallel_options`
declare the options of one part; a command takes the parts that make sense for it, and builds its
object with `from_click` from click's keyword arguments, which go no further.

`spd-sweep --help` loads this module: it imports click and, for --template's default, the name of
the packaged template, and nothing that loads the training core.
"""

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from orchestrator.backends.slurm.render import DEFAULT_TEMPLATE

if TYPE_CHECKING:
    from orchestrator.state.sweep_dir import SweepDir

DEFAULT_SWEEP = Path("sweeps/default.yaml")
"""What `--sweep` alone expands (from the repository when not in the working directory)."""

LOCAL_DATA_PARALLEL = (
    "--nodes/--nproc-per-node run each job in several processes, which --local does not: "
    "run one decomposition on this machine with `spd-decompose CONFIG --nproc N`, or submit "
    "the sweep to SLURM (without --local)"
)
SEARCH_DATA_PARALLEL = (
    "--nodes/--nproc-per-node: searches do not run data-parallel trials yet; "
    "run each trial in one process"
)

Params = dict[str, Any]
"""The keyword arguments click passes a command: read by `from_click`, not passed on."""
F = TypeVar("F", bound=Callable[..., Any])
OptionSet = Callable[[F], F]
"""A decorator that declares one or more options of a command (click.option's, or several)."""


def option_set(*decorators: OptionSet[F]) -> OptionSet[F]:
    """Several click options as one decorator; they show in --help in the order given."""

    def apply(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


job_options = option_set(
    click.option(
        "--experiments",
        metavar="A,B",
        help="Registry experiments, comma-separated (a search: one). Default: those the sweep "
        "file has a section for, else all; a search: its file's `experiment:`.",
    ),
    click.option(
        "--set",
        "set_values",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set a config key in every job (a search: in every trial), as spd-decompose --set "
        "does, e.g. --set steps=2000. Repeatable; part of what the sweep is.",
    ),
    click.option("--cpu", is_flag=True, help="Jobs run on CPU and request no GPU."),
    click.option("--project", help="W&B project the runs log to (default: no W&B)."),
    click.option(
        "--job_suffix", "--job-suffix", help="Appended to run names and the SLURM job name."
    ),
)
"""What the jobs are (`JobOptions`): fixed once the sweep exists, so `resume` has none of them."""

launch_options = option_set(
    click.option(
        "--n_agents",
        "--n-agents",
        type=click.IntRange(min=1),
        help="At most this many jobs run at once (default: SLURM no cap; local: CPUs); a search's "
        "agents (default 1).",
    ),
    click.option("--local", is_flag=True, help="Run on this machine instead of SLURM."),
    click.option(
        "--dry-run",
        "--dry_run",
        "dry_run",
        is_flag=True,
        help="Expand, validate and render; submit nothing.",
    ),
    click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Follow the jobs until they finish, with progress.",
    ),
    click.option(
        "--poll-interval",
        "--poll_interval",
        "poll_interval_s",
        type=float,
        default=2.0,
        show_default=True,
        help="Seconds between state checks while waiting.",
    ),
    click.option(
        "--create_report/--no-create_report",
        "--create-report/--no-create-report",
        "create_report",
        default=True,
        help="End with the sweep's report (<sweep>/report/index.html; W&B too when online). "
        "Default: on.",
    ),
    click.option("--report_title", "--report-title", "report_title", help="Title of the report."),
)
"""Where and how the jobs run, and what the command does while they do (`LaunchOptions`)."""

resource_options = option_set(
    click.option("--partition", help="SLURM partition."),
    click.option(
        "--time",
        help="SLURM time limit (default: twice the expected runtime, at most a day; a job that "
        "hits it is requeued and resumes from its checkpoint). No limit: unlimited (0 is refused).",
    ),
    click.option(
        "--gpus", type=click.IntRange(min=0), help="GPUs per job (default 1; 0 with --cpu)."
    ),
    click.option(
        "--cpus-per-task",
        "--cpus_per_task",
        "cpus_per_task",
        type=click.IntRange(min=1),
        help="CPUs per job, used as torch threads (default: what the experiment uses well).",
    ),
    click.option("--mem", help="Memory per job, e.g. 8G (default: what the experiment needs)."),
    click.option("--account", help="SLURM account."),
    click.option("--qos", help="SLURM quality of service."),
    click.option(
        "--sbatch",
        "sbatch_flags",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any other sbatch flag, e.g. --sbatch constraint=a100. Repeatable.",
    ),
    click.option(
        "--template",
        default=DEFAULT_TEMPLATE,
        show_default=True,
        help="sbatch template: a file, or the name of a packaged one.",
    ),
)
"""What each SLURM job asks for, and its sbatch script (`ResourceOptions`, and LaunchOptions'
sbatch_flags and template)."""

data_parallel_options = option_set(
    click.option(
        "--nodes",
        type=click.IntRange(min=1),
        help="Nodes per job (default 1): each job is one decomposition, data parallel over "
        "--nodes x --nproc-per-node processes (torchrun under srun).",
    ),
    click.option(
        "--nproc-per-node",
        "--nproc_per_node",
        "nproc_per_node",
        type=click.IntRange(min=1),
        help="Processes per node of each job (default 1), one GPU each (--gpus, per node, "
        "defaults to it). The config's batch_size is the global batch: it must divide by all "
        "processes.",
    ),
)
"""One job in several processes (ResourceOptions' nodes and nproc_per_node): not for searches."""

sweep_option = click.option(
    "--sweep",
    "sweep_file",
    is_flag=False,
    flag_value=str(DEFAULT_SWEEP),
    default=None,
    metavar="[FILE]",
    help=f"Expand a sweep file (alone: {DEFAULT_SWEEP}). Without "
    "--sweep each experiment's config runs once.",
)
"""A grid's sweep file (`spd-sweep` without a command)."""
storage_option = click.option(
    "--storage",
    metavar="URL",
    help="Study storage (sqlite:///..., postgresql://...). Default: a journal file in the sweep "
    "directory.",
)
"""Where a search's study is (`search`)."""
yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Submit sweeps of more than 1,000 jobs."
)
retry_failed_option = click.option(
    "--retry-failed",
    "--retry_failed",
    "retry_failed",
    is_flag=True,
    help="Also resubmit failed jobs.",
)


def n_trials_option(*, required: bool, help: str) -> OptionSet[F]:
    """--n_trials: the size of a new search (required), or a larger one for a resumed search."""
    return click.option(
        "--n_trials",
        "--n-trials",
        "n_trials",
        type=click.IntRange(min=1),
        required=required,
        help=help,
    )


@dataclass(frozen=True)
class JobOptions:
    """What every job (a search: every trial) is, beyond its sweep or search file."""

    experiments: str | None
    set_values: tuple[str, ...]
    cpu: bool
    project: str | None
    job_suffix: str | None

    @classmethod
    def from_click(cls, params: Params) -> "JobOptions":
        return cls(**{field.name: params[field.name] for field in fields(cls)})

    def overrides(self) -> dict[str, Any]:
        """Dotted config key -> value that every job gets, after the sweep's own values: --set,
        --cpu (device) and --project (W&B). A key set twice is an error, not a silent winner."""
        # Imported here: the config's parser loads pydantic models, which --help does not need.
        from spd.config_loading import ConfigError, parse_override

        overrides: dict[str, Any] = {}
        for text in self.set_values:
            key, value = parse_override(text)
            if key in overrides:
                raise ConfigError(f"--set {key} is given twice: give it once")
            overrides[key] = value
        implied = {"device": ("--cpu", "cpu" if self.cpu else None)}
        implied["wandb_project"] = ("--project", self.project)
        for key, (flag, value) in implied.items():
            if value is None:
                continue
            if key in overrides:
                raise ConfigError(f"--set {key} and {flag} both set {key}: give one")
            overrides[key] = value
        return overrides


@dataclass(frozen=True)
class ResourceOptions:
    """What each SLURM job asks for: the fields of SlurmResources that have an option of their
    own (the rest comes from --sbatch); None where not given."""

    partition: str | None
    time: str | None
    gpus: int | None
    cpus_per_task: int | None
    mem: str | None
    account: str | None
    qos: str | None
    nodes: int | None
    nproc_per_node: int | None

    @classmethod
    def from_click(cls, params: Params) -> "ResourceOptions":
        # .get: `search` has no --nodes/--nproc-per-node (a trial runs in one process).
        return cls(**{field.name: params.get(field.name) for field in fields(cls)})

    def slurm_fields(self) -> dict[str, Any]:
        """SlurmResources field -> value (None: not given)."""
        return asdict(self)


RESOURCE_OPTIONS = tuple(field.name for field in fields(ResourceOptions))
SLURM_ONLY_OPTIONS = (*RESOURCE_OPTIONS, "sbatch_flags", "template")


@dataclass(frozen=True)
class LaunchOptions:
    """Where and how the jobs (a search's agents) are submitted, and what the command does while
    they run: the part every command that launches shares."""

    local: bool
    n_agents: int | None
    template: str
    resources: ResourceOptions
    sbatch_flags: tuple[str, ...]
    dry_run: bool
    wait: bool
    poll_interval_s: float
    create_report: bool
    report_title: str | None
    on_command_line: frozenset[str]
    """The command's parameters given on the command line, as opposed to their defaults: those
    `resume` changes in the stored launch settings."""
    command: tuple[str, ...]
    """The command as typed, which the sweep records with each launch."""

    @classmethod
    def from_click(cls, ctx: click.Context, params: Params) -> "LaunchOptions":
        return cls(
            local=params["local"],
            n_agents=params["n_agents"],
            template=params["template"],
            resources=ResourceOptions.from_click(params),
            sbatch_flags=params["sbatch_flags"],
            dry_run=params["dry_run"],
            wait=params["wait"],
            poll_interval_s=params["poll_interval_s"],
            create_report=params["create_report"],
            report_title=params["report_title"],
            on_command_line=frozenset(
                name
                for name in params
                if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
            ),
            command=("spd-sweep", *sys.argv[1:]),
        )

    def world_size(self) -> int:
        """The processes of each job that --nodes and --nproc-per-node ask for (1 when not
        given)."""
        return (self.resources.nodes or 1) * (self.resources.nproc_per_node or 1)

    def given(self, *names: str) -> list[str]:
        """Those of the parameters `names` that were given on the command line, in that order."""
        return [name for name in names if name in self.on_command_line]

    def check_new_launch(self) -> None:
        """--local with what it would ignore (SLURM's options) or cannot do (a job in several
        processes) is an error. `resume` does not check: there the options update the stored
        launch settings, for a later SLURM launch."""
        if self.local and self.world_size() > 1:
            raise click.UsageError(LOCAL_DATA_PARALLEL)
        slurm_only = ", ".join(flag_of(name) for name in self.given(*SLURM_ONLY_OPTIONS))
        if self.local and slurm_only:
            raise click.UsageError(
                f"{slurm_only}: SLURM options; --local runs the jobs here and would ignore them"
            )


@dataclass(frozen=True)
class GridOptions:
    """`spd-sweep [OPTIONS]`: evaluation runs, or a grid sweep of a sweep file."""

    sweep_file: str | None
    jobs: JobOptions
    launch: LaunchOptions
    yes: bool
    retry_failed: bool

    @classmethod
    def from_click(cls, ctx: click.Context, params: Params) -> "GridOptions":
        return cls(
            sweep_file=params["sweep_file"],
            jobs=JobOptions.from_click(params),
            launch=LaunchOptions.from_click(ctx, params),
            yes=params["yes"],
            retry_failed=params["retry_failed"],
        )


@dataclass(frozen=True)
class SearchOptions:
    """`spd-sweep search FILE`: an Optuna search of FILE's space."""

    search_file: str
    n_trials: int
    storage: str | None
    jobs: JobOptions
    launch: LaunchOptions

    @classmethod
    def from_click(cls, ctx: click.Context, params: Params) -> "SearchOptions":
        return cls(
            search_file=params["search_file"],
            n_trials=params["n_trials"],
            storage=params["storage"],
            jobs=JobOptions.from_click(params),
            launch=LaunchOptions.from_click(ctx, params),
        )


@dataclass(frozen=True)
class ResumeOptions:
    """`spd-sweep resume SWEEP_ID`: a stored sweep or search, as defined, launched again."""

    sweep_ref: str
    n_trials: int | None
    retry_failed: bool
    launch: LaunchOptions

    @classmethod
    def from_click(cls, ctx: click.Context, params: Params) -> "ResumeOptions":
        return cls(
            sweep_ref=params["sweep_ref"],
            n_trials=params["n_trials"],
            retry_failed=params["retry_failed"],
            launch=LaunchOptions.from_click(ctx, params),
        )


FLAG_OF_PARAMETER = {"sbatch_flags": "--sbatch", "nproc_per_node": "--nproc-per-node"}
"""Parameters whose flag is not `--<parameter name>`."""


def flag_of(parameter: str) -> str:
    """How the user types the option that sets `parameter`."""
    return FLAG_OF_PARAMETER.get(parameter, f"--{parameter}")


def open_sweep_argument(ctx: click.Context, param: click.Parameter, sweep_ref: str) -> "SweepDir":
    # Imported here: `--help` does not need the sweep directory's module and its pydantic models.
    from orchestrator.state.sweep_dir import open_sweep

    try:
        return open_sweep(sweep_ref)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None


sweep_argument = click.argument("sweep", metavar="SWEEP", callback=open_sweep_argument)
"""A sweep by id or by directory (`status`, `report`), opened; one that does not exist is an
error."""
