"""What `spd-sweep` was asked: the main command's options as one typed object (`SweepOptions`),
built once from click's arguments, and the `SWEEP` argument the subcommands share.

Nothing here imports more than click: `spd-sweep --help` loads this module.
"""

import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

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
    "--nodes/--nproc-per-node: searches (--optuna) do not run data-parallel trials yet; "
    "run each trial in one process"
)


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

    def slurm_fields(self) -> dict[str, Any]:
        """SlurmResources field -> value (None: not given)."""
        return asdict(self)


RESOURCE_OPTIONS = tuple(field.name for field in fields(ResourceOptions))


@dataclass(frozen=True)
class SweepOptions:
    """The options of `spd-sweep` (the main command), by parameter name."""

    # What the jobs are: fixed once the sweep exists (--resume refuses them).
    experiments: str | None
    sweep_file: str | None
    job_suffix: str | None
    project: str | None
    cpu: bool
    set_values: tuple[str, ...]
    optuna: str | None
    storage: str | None
    n_trials: int | None
    # Where and how they run.
    local: bool
    n_agents: int | None
    template: str
    resources: ResourceOptions
    sbatch_flags: tuple[str, ...]
    # What this command does with them.
    resume_ref: str | None
    dry_run: bool
    yes: bool
    retry_failed: bool
    wait: bool
    poll_interval_s: float
    create_report: bool
    report_title: str | None
    on_command_line: frozenset[str]
    """The parameters given on the command line, as opposed to their defaults."""
    command: tuple[str, ...]
    """The command as typed, which the sweep records with each launch."""

    @classmethod
    def from_click(cls, ctx: click.Context, params: dict[str, Any]) -> "SweepOptions":
        """From the keyword arguments click passes the command, and where each came from."""
        resources = ResourceOptions(**{name: params[name] for name in RESOURCE_OPTIONS})
        others = {name: value for name, value in params.items() if name not in RESOURCE_OPTIONS}
        on_command_line = frozenset(
            name for name in params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        )
        return cls(
            **others,
            resources=resources,
            on_command_line=on_command_line,
            command=("spd-sweep", *sys.argv[1:]),
        )

    def job_overrides(self) -> dict[str, Any]:
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

    def world_size(self) -> int:
        """The processes of each job that --nodes and --nproc-per-node ask for (1 when not
        given)."""
        return (self.resources.nodes or 1) * (self.resources.nproc_per_node or 1)

    def given(self, *names: str) -> list[str]:
        """Those of the parameters `names` that were given on the command line, in that order."""
        return [name for name in names if name in self.on_command_line]


FLAG_OF_PARAMETER = {
    "sweep_file": "--sweep",
    "set_values": "--set",
    "sbatch_flags": "--sbatch",
    "resume_ref": "--resume",
    "nproc_per_node": "--nproc-per-node",
}
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
