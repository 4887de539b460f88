"""The offline HTML report: <sweep>/report/index.html with its PNGs beside it.

It opens from disk with no server and no network: figures are PNG files next to the page (the
report's own, and a copy of each experiment's best CI-per-feature figure), every other run figure
and log is a relative link into the sweep directory, and the tables sort with a few lines of
inline JavaScript.
"""

import datetime as dt
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.report.figures import alive_against_c, overlaid_loss_curves
from orchestrator.report.model import HEADLINE_METRICS, SweepReport
from spd.atomic_io import atomic_write_text
from spd.figures import save_figure
from spd.metric_names import ALIVE, ALIVE_LABEL, PROBE_ACTIVE_LABEL

TEMPLATES_DIR = Path(__file__).parent / "templates"
INDEX = "index.html"
UNSAFE_FILENAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def copy_atomically(source: Path, destination: Path) -> None:
    tmp = destination.with_name(f".{destination.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(destination)


def write_figures(report: SweepReport, out_dir: Path) -> dict[str, dict[str, Path]]:
    """Experiment -> {'losses', 'alive', 'best_ci'} -> PNG in out_dir (where there is one)."""
    figures: dict[str, dict[str, Path]] = {}
    for experiment in report.experiments:
        stem = UNSAFE_FILENAME_CHARACTERS.sub("_", experiment.name)
        written = figures.setdefault(experiment.name, {})
        for key, make in (("losses", overlaid_loss_curves), ("alive", alive_against_c)):
            fig = make(experiment)
            if fig is not None:
                written[key] = out_dir / f"{stem}_{key}.png"
                save_figure(fig, written[key])
        best_ci = experiment.best.figure("ci_per_feature") if experiment.best else None
        if best_ci is not None and best_ci.exists():
            written["best_ci"] = out_dir / f"{stem}_best_ci_per_feature.png"
            copy_atomically(best_ci, written["best_ci"])
    return figures


def write_search_plots(report: SweepReport, out_dir: Path) -> list[Path]:
    if report.search is None:
        return []
    copies = [out_dir / f"search_{plot.name}" for plot in report.search.plots]
    for plot, copy in zip(report.search.plots, copies):
        copy_atomically(plot, copy)
    return copies


def render_page(
    report: SweepReport,
    out_dir: Path,
    figures: dict[str, dict[str, Path]],
    search_plots: list[Path],
) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["value"] = format_value
    environment.filters["href"] = lambda path: Path(os.path.relpath(path, out_dir)).as_posix()
    return environment.get_template("report.html.j2").render(
        report=report,
        figures=figures,
        search_plots=search_plots,
        headline_metrics=HEADLINE_METRICS,
        alive_label=ALIVE_LABEL,
        column_titles={ALIVE: f"components {ALIVE_LABEL}"},
        probe_active_label=PROBE_ACTIVE_LABEL,
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def write_html_report(report: SweepReport, out_dir: Path) -> Path:
    """Write (or rewrite) the report into out_dir; returns its index.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_figures(report, out_dir)
    search_plots = write_search_plots(report, out_dir)
    index = out_dir / INDEX
    atomic_write_text(index, render_page(report, out_dir, figures, search_plots))
    return index
