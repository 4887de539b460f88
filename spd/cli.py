"""Command-line entry points of the training core: spd-decompose and spd-train-target."""

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from spd.config import Config
from spd.config_fingerprint import fingerprint_of
from spd.config_loading import ConfigError, load_config
from spd.dir_lock import DirBusyError
from spd.distributed import RANK_ENV, RankLost, resolve_device
from spd.distributed_launch import RanksFailed, check_nproc, launch_ranks
from spd.divergence import TrainingDiverged
from spd.run import run_decomposition
from spd.run_dir import runs_root
from spd.validate import raise_problems, validate

DECOMPOSE_EXAMPLES = """
\b
Examples:
  spd-decompose tms_5-2                                  # a registry experiment
  spd-decompose my_config.yaml --out runs/my_run
  spd-decompose tms_5-2 --set steps=2000 --set seed=3    # dotted overrides, YAML values
  spd-decompose tms_5-2 --set 'target_module_patterns=[[linear1, 10], [linear2, 30]]'
  spd-decompose tms_5-2 --out runs/x                     # run, or continue a killed run
  spd-decompose tms_5-2 --out runs/x --no-resume         # remove that run and start over
  spd-decompose resid_mlp1 --nproc 2                     # one run, data parallel in 2 processes
  spd-decompose --schema > spd-config.schema.json        # JSON schema for editors
"""


def is_main_rank() -> bool:
    """False in a data-parallel rank other than 0 (spd.distributed), which stays quiet: rank 0
    logs and reports for the run."""
    return os.environ.get(RANK_ENV, "0") == "0"


def configure_process() -> None:
    """What an entry point sets up and a library import must not: logging, and matplotlib's
    file-only backend (user figures made through pyplot never open a window)."""
    level = logging.INFO if is_main_rank() else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Through the environment rather than matplotlib.use: matplotlib is imported when a run
    # draws its first figure, not before its first step (it takes ~0.9 s).
    os.environ["MPLBACKEND"] = "Agg"


class UserInputError(click.ClickException):
    """An input the user can fix: its message, no traceback, exit code 2."""

    exit_code = 2


@contextlib.contextmanager
def reported_errors(debug: bool) -> Iterator[None]:
    """Turn the errors a user can act on into their messages (--debug: tracebacks): an input
    error exits with code 2, a diverged run (its message names the step) with 1."""
    try:
        yield
    except (ConfigError, DirBusyError) as e:
        if debug:
            raise
        if not is_main_rank():
            sys.exit(0)  # every rank has this error: rank 0 prints it and fails the run
        raise UserInputError(str(e)) from None
    except TrainingDiverged as e:
        if debug:
            raise
        if not is_main_rank():
            sys.exit(0)
        raise click.ClickException(str(e)) from None
    except RankLost as e:
        if debug:
            raise
        # The launcher (spd-decompose --nproc, or torchrun) reports the rank that failed first.
        logging.getLogger("spd.distributed").warning("%s", e)
        sys.exit(1)
    except RanksFailed as e:
        if e.reported_by_main_rank:
            sys.exit(e.exit_code)
        raise click.ClickException(str(e)) from None


def default_run_dir(source: str, config: Config) -> Path:
    """$SPD_RUNS_DIR/<name>-<fingerprint>: two configs that differ in a result never share one."""
    return runs_root() / f"{Path(source).stem}-{fingerprint_of(config).fingerprint[:8]}"


DEBUG_OPTION = click.option("--debug", is_flag=True, help="Show the traceback of an error.")


@click.command(epilog=DECOMPOSE_EXAMPLES)
@click.argument("source", required=False)
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Run directory (default: $SPD_RUNS_DIR/<name>-<config fingerprint>; "
              "$SPD_RUNS_DIR defaults to ./runs).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key (dotted path); the value is parsed as YAML. Repeatable.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue the run in the run directory (it must be of the same config); "
              "--no-resume removes it and starts over.")
@click.option("--nproc", type=int, metavar="N",
              help="Run data parallel in N processes on this machine (torch.distributed.run; "
              "one CUDA device per process, else gloo on the CPU). batch_size stays the global "
              "batch: it must be a multiple of N.")
@click.option("--schema", is_flag=True, help="Print the config's JSON schema and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@DEBUG_OPTION
def main(
    source: str | None, out_dir: Path | None, overrides: tuple[str, ...], resume: bool,
    nproc: int | None, schema: bool, quiet: bool, debug: bool,
) -> None:
    """Decompose a model with SPD. SOURCE is a config YAML file or an experiment name."""
    if schema:
        click.echo(json.dumps(Config.model_json_schema(), indent=2))
        return
    if source is None:
        raise click.UsageError("give a config file or an experiment name (see --help)")
    configure_process()
    with reported_errors(debug):
        # run_decomposition validates the config (spd.validate) before it writes anything.
        config = load_config(source, list(overrides))
        out = out_dir or default_run_dir(source, config)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file, not a run directory: choose another --out")
        if nproc is None:
            summary = run_decomposition(config, out, resume=resume, progress=not quiet)
        else:
            check_nproc(config, nproc)
            raise_problems(validate(config))  # one error here, not one per rank
            launch_ranks(nproc, worker_args(source, out, overrides, resume, quiet, debug))
            return  # rank 0 printed where the results are
    if not is_main_rank():
        return
    click.echo(f"\nRun directory: {out}")
    click.echo(f"Summary:       {out / 'summary.json'}")
    for figure in summary.figures:
        click.echo(f"Figure:        {out / figure}")
    click.echo("\nPer module:")
    for path, module in summary.modules.items():
        values = module.model_dump(exclude={"pattern"}, exclude_none=True)
        fields = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in values.items())
        click.echo(f"  {path}: {fields}")


def worker_args(
    source: str, out: Path, overrides: tuple[str, ...], resume: bool, quiet: bool, debug: bool
) -> list[str]:
    """spd-decompose's arguments for each rank of a --nproc run."""
    args = [source, "--out", str(out), *(f"--set={o}" for o in overrides)]
    args.append("--resume" if resume else "--no-resume")
    return args + ["--quiet"] * quiet + ["--debug"] * debug


@click.command()
@click.argument("source")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@DEBUG_OPTION
def train_target_main(source: str, overrides: tuple[str, ...], debug: bool) -> None:
    """Train (or find cached) the target model of a config or experiment, and print its path.

    \b
    Example:
      spd-train-target tms_40-10
    """
    configure_process()
    with reported_errors(debug):
        config = load_config(source, list(overrides))
        raise_problems(validate(config))
    from spd.experiment_tasks import build_task
    from spd.target_cache import cached_target_dir

    build_task(config, resolve_device(config.device), progress=True)
    target_config = getattr(config.task_config, "target", None)
    if target_config is not None:
        click.echo(cached_target_dir(config.task_config.task_name, target_config))


if __name__ == "__main__":
    sys.exit(main())
