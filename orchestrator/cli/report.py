"""`spd-sweep report <sweep id>`, and the report that ends every sweep (unless --no-create_report).

The report is rebuilt from the sweep directory alone, so it can be made at any time, also while
jobs are still running; a title given once is kept in the sweep's meta for later rebuilds. Each
build also writes the W&B report as a spec (report/wandb_report.json), offline too; `--wandb`
publishes it.

What builds the report (jinja2, matplotlib, W&B) is imported when one is made: orchestrator.cli.main
imports this module for `spd-sweep --help`.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.options import sweep_argument

if TYPE_CHECKING:
    from orchestrator.state.sweep_dir import SweepDir


def create_report(
    sweep: "SweepDir", title: str | None, use_wandb: bool | None, echo: Callable[[str], None]
) -> Path:
    """Write the HTML report and the W&B report's spec; publish the latter on W&B when
    `use_wandb`, or, when it is None, where W&B is online. Returns index.html."""
    from orchestrator.report.html import write_html_report
    from orchestrator.report.model import read_sweep_report
    from orchestrator.report.wandb_report import write_wandb_report

    if title is not None:
        sweep.write_meta(sweep.read_meta().model_copy(update={"title": title}))
    report = read_sweep_report(sweep)
    index = write_html_report(report, sweep.report)
    echo(f"Report: {index}")
    write_wandb_report(report, sweep.report, use_wandb, echo)
    return index


@click.command("report", short_help="(Re)build the report of a sweep, at any time.")
@sweep_argument
@click.option("--title", help="Title of the report (kept for later rebuilds).")
@click.option(
    "--wandb/--no-wandb",
    "use_wandb",
    default=None,
    help="Publish the W&B report (kept offline in report/wandb_report.json) whatever WANDB_MODE "
    "says, after `wandb sync` of offline runs; --no-wandb: never. Default: when W&B is online.",
)
def report(sweep: "SweepDir", title: str | None, use_wandb: bool | None) -> None:
    """(Re)build the report of a sweep (by id, or a sweep directory) from disk, at any time."""
    create_report(sweep, title, use_wandb, click.echo)
