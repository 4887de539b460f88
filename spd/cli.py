"""Command-line entry points of the training core: spd-decompose and spd-train-target."""

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import matplotlib

from spd.config import Config
from spd.config_fingerprint import fingerprint_of
from spd.config_loading import ConfigError, load_config
from spd.dir_lock import DirBusyError
from spd.divergence import TrainingDiverged
from spd.run import resolve_device, run_decomposition
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
  spd-decompose --schema > spd-config.schema.json        # JSON schema for editors
"""


def configure_process() -> None:
    """What an entry point sets up and a library import must not: logging, and matplotlib's
    file-only backend (user figures made through pyplot never open a window)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    matplotlib.use("Agg")


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
        raise UserInputError(str(e)) from None
    except TrainingDiverged as e:
        if debug:
            raise
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
@click.option("--schema", is_flag=True, help="Print the config's JSON schema and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@DEBUG_OPTION
def main(
    source: str | None, out_dir: Path | None, overrides: tuple[str, ...], resume: bool,
    schema: bool, quiet: bool, debug: bool,
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
        summary = run_decomposition(config, out, resume=resume, progress=not quiet)
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

    build_task(config, resolve_device(config.device))
    target_config = getattr(config.task_config, "target", None)
    if target_config is not None:
        click.echo(cached_target_dir(config.task_config.task_name, target_config))


if __name__ == "__main__":
    sys.exit(main())
