"""`spd-sweep report <sweep id>`, and the report that ends every sweep (unless --no-create_report).

The report is rebuilt from the sweep directory alone, so it can be made at any time, also while
jobs are still running; a title given once is kept in the sweep's meta for later rebuilds.

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
    sweep: "SweepDir", title: str | None, use_wandb: bool, echo: Callable[[str], None]
) -> Path:
    """Write the HTML report (and the W&B report where possible); returns index.html."""
    import wandb

    from orchestrator.report.html import write_html_report
    from orchestrator.report.model import read_sweep_report
    from orchestrator.report.wandb_report import publish_wandb_report

    if title is not None:
        sweep.write_meta(sweep.read_meta().model_copy(update={"title": title}))
    report = read_sweep_report(sweep)
    index = write_html_report(report, sweep.report)
    echo(f"Report: {index}")
    if use_wandb:
        try:
            publish_wandb_report(report, echo)
        except wandb.errors.Error as e:  # W&B's servers or login: the HTML report stands
            echo(f"No W&B report: {type(e).__name__}: {e}")
    return index


@click.command("report")
@sweep_argument
@click.option("--title", help="Title of the report (kept for later rebuilds).")
@click.option(
    "--wandb/--no-wandb",
    "use_wandb",
    default=True,
    show_default=True,
    help="Also create the W&B report, when the runs log to W&B and W&B is online.",
)
def report(sweep: "SweepDir", title: str | None, use_wandb: bool) -> None:
    """(Re)build the report of a sweep (by id, or a sweep directory) from disk, at any time."""
    create_report(sweep, title, use_wandb, click.echo)
