"""`spd-sweep search FILE --n_trials N [--storage URL]`: a search instead of a grid.

The CLI passes its options and the two things it knows how to build from them (launch settings
and a backend); this module validates the search before anything is written, launches the agents,
and ends with the study's status, best configs, plots and report. `spd-sweep resume <search>`
(`resume_search`) does the same from the sweep directory, where the search is stored.
`status_lines` is what `spd-sweep status` adds for a search.
"""

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import matplotlib

from orchestrator.backends.base import Backend
from orchestrator.backends.track import state_counts
from orchestrator.cli.options import LaunchOptions, ResumeOptions, SearchOptions
from orchestrator.report.html import write_html_report
from orchestrator.report.model import read_sweep_report
from orchestrator.report.wandb_report import write_wandb_report
from orchestrator.search.launch import (
    SearchSpec,
    launch_search,
    n_finished,
    read_spec,
    search_sweep_dir,
    study_of,
    write_agents,
    write_search_sweep,
)
from orchestrator.search.results import (
    best_trials,
    search_section,
    status_text,
    write_best_configs,
)
from orchestrator.search.spec import SearchFile, check_search, load_search_file
from orchestrator.search.study import storage_display
from orchestrator.state.sweep_dir import JobState, LaunchSettings, Manifest, SweepDir
from orchestrator.sweep.params import ConfigKey
from spd.registry import EXPERIMENTS

SettingsFor = Callable[[list[str], str], LaunchSettings]
"""(experiments, label) -> how the agents are submitted."""
BackendFor = Callable[[LaunchSettings, int], Backend]


def pick_experiment(experiments_option: str | None, file_experiment: str | None) -> str:
    given = [e.strip() for e in (experiments_option or "").split(",") if e.strip()]
    if len(given) > 1:
        raise click.UsageError(
            f"a search runs one experiment; got --experiments {', '.join(given)}"
        )
    if given and file_experiment is not None and given[0] != file_experiment:
        raise click.UsageError(
            f"--experiments {given[0]} differs from the search file's experiment {file_experiment}"
        )
    experiment = given[0] if given else file_experiment
    if experiment is None:
        raise click.UsageError(
            "name the experiment: --experiments NAME or `experiment:` in the file"
        )
    if experiment not in EXPERIMENTS:
        raise click.UsageError(f"unknown experiment {experiment}; known: {', '.join(EXPERIMENTS)}")
    return experiment


def run_search(
    options: SearchOptions,
    settings_for: SettingsFor,
    backend_for: BackendFor,
    held: contextlib.ExitStack,
) -> None:
    """`spd-sweep search FILE`: the search's sweep directory (its lock entered into `held`),
    its agents submitted and followed."""
    search_path = Path(options.search_file)
    search = load_search_file(search_path)
    experiment = pick_experiment(options.jobs.experiments, search.experiment)
    overrides = options.jobs.overrides()
    check_not_searched(overrides, search)
    check_search(experiment, search, overrides)  # before anything is written or submitted
    spec = SearchSpec(
        experiment=experiment,
        search=search,
        overrides=overrides,
        n_trials=options.n_trials,
        storage_url=options.storage,
    )
    settings = settings_for([experiment], search_path.stem)
    n_agents = options.launch.n_agents or 1
    held.enter_context(search_sweep_dir(search_path.stem, options.jobs.job_suffix, spec).lock())
    sweep, manifest = write_search_sweep(
        spec,
        search_path,
        search_path.stem,
        options.jobs.job_suffix,
        n_agents,
        list(options.launch.command),
        options.jobs.project,
    )
    backend = backend_for(settings, n_agents)
    launch_and_report(sweep, manifest, spec, settings, backend, options.launch)


def check_not_searched(overrides: dict[str, Any], search: SearchFile) -> None:
    """A --set of a key the search varies would silently replace every suggestion."""
    for dotted in overrides:
        key = ConfigKey(dotted)
        varied = [
            k.label
            for k in search.space
            if key.replaces(k) or (isinstance(k, ConfigKey) and k.replaces(key))
        ]
        if varied:
            raise click.UsageError(
                f"--set {dotted}: the search varies {', '.join(varied)}; set it in its `fixed:` "
                "or drop it from `search:`"
            )


def resume_search(
    sweep: SweepDir, settings: LaunchSettings, options: ResumeOptions, backend_for: BackendFor
) -> None:
    """`spd-sweep resume <search>`: the stored search, with the launch settings given (stored
    ones merged with the command line's) and a target of --n_trials when given."""
    spec = read_spec(sweep)
    if options.n_trials is not None:
        n_done = n_finished(sweep, spec)
        if options.n_trials < n_done:
            raise click.UsageError(
                f"--n_trials {options.n_trials} is below the {n_done} trials search "
                f"{sweep.sweep_id} has finished; give --n_trials {n_done} or more"
            )
        spec = spec.model_copy(update={"n_trials": options.n_trials})
    n_agents = settings.n_agents or 1  # as run_search counts them
    manifest = write_agents(sweep, spec, n_agents)
    backend = backend_for(settings, n_agents)
    launch_and_report(sweep, manifest, spec, settings, backend, options.launch)


def launch_and_report(
    sweep: SweepDir,
    manifest: Manifest,
    spec: SearchSpec,
    settings: LaunchSettings,
    backend: Backend,
    options: LaunchOptions,
) -> None:
    """Submit the agents the study still needs, follow them, and end with what it found."""
    matplotlib.use("Agg")  # the search plots go to files (optuna draws them through pyplot)
    n_done = n_finished(sweep, spec)
    if n_done >= spec.n_trials and not options.dry_run:
        click.echo(
            f"Search {sweep.sweep_id} is finished ({n_done} of {spec.n_trials} trials): nothing "
            f"to submit. A larger --n_trials extends it: spd-sweep resume {sweep.sweep_id} "
            f"--n_trials N"
        )
        click.echo("\n".join(status_lines(sweep)))
        return
    manifest = launch_search(
        sweep,
        manifest,
        backend,
        settings,
        dry_run=options.dry_run,
        wait=options.wait,
        poll_interval_s=options.poll_interval_s,
        echo=click.echo,
    )
    click.echo(f"Sweep directory: {sweep.path}")
    click.echo(f"Dashboard: optuna-dashboard {storage_display(sweep, spec.storage_url)}")
    if options.dry_run:
        return
    click.echo("\n".join(status_lines(sweep)))
    study = study_of(sweep, spec)
    best = write_best_configs(sweep, best_trials(study.get_trials(deepcopy=False), spec.search))
    click.echo(f"Best configs: {', '.join(str(p) for p in best) or 'none yet'}")
    if options.create_report:
        section = search_section(sweep, study, spec.search)
        report = read_sweep_report(sweep, options.report_title, search=section)
        click.echo(f"Report: {write_html_report(report, sweep.report)}")
        write_wandb_report(report, sweep.report, None, click.echo)
    if not options.wait:
        click.echo(f"Follow it with: spd-sweep status {sweep.sweep_id}")
        return
    counts = state_counts(manifest)
    if counts[JobState.FAILED] or counts[JobState.CANCELLED]:
        sys.exit(1)


def status_lines(sweep: SweepDir) -> list[str]:
    """The study's trials and its best trial or Pareto front (read-only)."""
    spec = read_spec(sweep)
    return [status_text(sweep, study_of(sweep, spec), spec.search, spec.n_trials)]
