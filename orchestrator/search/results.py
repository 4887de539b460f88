"""What a search found: its trials, the best trial or Pareto front, their configs, and plots.

Best trials are the complete, feasible (constraint met) ones that no other such trial dominates;
with one objective that is the best trial (ties included). Their configs are copied from their
run directories to `<sweep>/best_configs/trial-<n>.yaml`, ready for `spd-decompose`. Plots go to
`<sweep>/search_plots/` and into the report's search section.
"""

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from orchestrator.search.spec import SearchFile
from orchestrator.search.study import CONSTRAINT_ATTR, ERROR_ATTR, RUN_DIR_ATTR, counted_trials
from orchestrator.state.sweep_dir import SweepDir
from spd.atomic_io import atomic_write_text
from spd.progress import read_progress
from spd.run_dir import RunDir

logger = logging.getLogger(__name__)

BEST_CONFIGS_DIR = "best_configs"
PLOTS_DIR = "search_plots"


@dataclass(frozen=True)
class SearchResults:
    """What a search found, for its report: plots and the best trials' configs."""

    plots: list[Path]
    best_configs: dict[str, str]
    """Name -> ready-to-run YAML."""


def is_feasible(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get(CONSTRAINT_ATTR, 0.0) <= 0.0


def dominates(a: list[float], b: list[float], signs: list[float]) -> bool:
    """a is at least as good in every objective and better in one (signs: +1 minimise)."""
    pairs = [(s * x, s * y) for x, y, s in zip(a, b, signs, strict=True)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def best_trials(trials: list[FrozenTrial], search: SearchFile) -> list[FrozenTrial]:
    signs = [1.0 if d == "minimize" else -1.0 for d in search.directions]
    candidates = [
        t for t in counted_trials(trials) if t.state == TrialState.COMPLETE and is_feasible(t)
    ]
    return [
        t
        for t in candidates
        if not any(dominates(o.values, t.values, signs) for o in candidates if o is not t)
    ]


def trial_run_dir(sweep: SweepDir, trial: FrozenTrial) -> RunDir | None:
    relative = trial.user_attrs.get(RUN_DIR_ATTR)
    return None if relative is None else RunDir(sweep.path / relative)


def write_best_configs(sweep: SweepDir, best: list[FrozenTrial]) -> list[Path]:
    """Each best trial's resolved config as `best_configs/trial-<n>.yaml`; stale ones removed."""
    out_dir = sweep.path / BEST_CONFIGS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for trial in best:
        run_dir = trial_run_dir(sweep, trial)
        if run_dir is None or not run_dir.config.exists():
            continue
        path = out_dir / f"trial-{trial.number}.yaml"
        header = f"# Trial {trial.number} of search {sweep.sweep_id}: values {trial.values}\n"
        atomic_write_text(path, header + run_dir.config.read_text())
        written.append(path)
    for old in set(out_dir.glob("*.yaml")) - set(written):
        old.unlink()
    return written


def format_values(values: list[float] | None) -> str:
    return "-" if values is None else ", ".join(f"{v:.4g}" for v in values)


def trial_progress(sweep: SweepDir, trial: FrozenTrial) -> str:
    """How far the trial got: where a pruned one stopped, the step a running one is at (from
    its run's progress file)."""
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        return f"pruned at step {trial.last_step}"
    run_dir = trial_run_dir(sweep, trial)
    if trial.state == TrialState.RUNNING and run_dir is not None:
        progress = read_progress(run_dir.progress)
        if progress is not None:
            return f"step {progress.step}/{progress.steps}"
    return ""


def trials_table(sweep: SweepDir, trials: list[FrozenTrial], search: SearchFile) -> str:
    names = " | ".join(search.objectives)
    lines = [f"{'trial':>5}  {'state':<8}  {names}  params / progress / error"]
    for t in counted_trials(trials):
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items()
        )
        error = t.user_attrs.get(ERROR_ATTR)
        detail = "  ".join(
            filter(
                None,
                [
                    params,
                    (f"({progress})" if (progress := trial_progress(sweep, t)) else ""),
                    f"[{error.splitlines()[-1]}]" if error is not None else "",
                ],
            )
        )
        lines.append(f"{t.number:>5}  {t.state.name:<8}  {format_values(t.values)}  {detail}")
    return "\n".join(lines)


def status_text(sweep: SweepDir, study: optuna.Study, search: SearchFile, n_trials: int) -> str:
    trials = study.get_trials(deepcopy=False)
    counted = counted_trials(trials)
    counts = {s.name.lower(): sum(t.state == s for t in counted) for s in TrialState}
    shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    lines = [f"Study {study.study_name}: {len(counted)} of {n_trials} trials ({shown or 'none'})"]
    lines.append(trials_table(sweep, trials, search))
    best = best_trials(trials, search)
    heading = "Best trial" if len(search.objectives) == 1 else "Pareto front"
    if best:
        lines.append(f"{heading} ({', '.join(search.objectives)}):")
        lines.extend(f"  trial {t.number}: {format_values(t.values)}  {t.params}" for t in best)
    else:
        lines.append(f"{heading}: no complete feasible trial yet")
    return "\n".join(lines)


def module_c_plot(best: list[FrozenTrial], path: Path) -> None:
    c_params = sorted({k for t in best for k in t.params if k.startswith(("C", "identity_C"))})
    fig = Figure(figsize=(max(4, 1.2 * len(c_params) + 2), 3.5))
    ax = fig.subplots()
    width = 0.8 / max(1, len(best))
    for i, trial in enumerate(best):
        xs = [j + i * width for j in range(len(c_params))]
        ax.bar(xs, [trial.params.get(k, 0) for k in c_params], width, label=f"trial {trial.number}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(c_params))], c_params, rotation=20)
    ax.set_ylabel("C")
    ax.set_title("C per module of the best trials")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_plots(sweep: SweepDir, study: optuna.Study, search: SearchFile) -> list[Path]:
    """History, Pareto front (several objectives), importances, C of the best trials: each
    plot that the trials so far allow (importances need two complete trials)."""
    from optuna.visualization import matplotlib as optuna_plots

    out_dir = sweep.path / PLOTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    multi = len(search.objectives) > 1
    first = next(iter(search.objectives))

    def first_value(t: FrozenTrial) -> float:
        return t.values[0]

    target = {"target": first_value, "target_name": first} if multi else {}
    plots = {
        "history": lambda: optuna_plots.plot_optimization_history(study, **target),
        "importances": lambda: optuna_plots.plot_param_importances(study, **target),
    }
    if multi:
        names = list(search.objectives)
        plots["pareto_front"] = lambda: optuna_plots.plot_pareto_front(study, target_names=names)
    written = []
    for name, plot in plots.items():
        path = out_dir / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # e.g. "importances are computed for low values": true for minimised objectives
                warnings.simplefilter("ignore", UserWarning)
                axes = plot()
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            logger.info("No %s plot yet: %s", name, e)
            continue
        figure = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    best = best_trials(study.get_trials(deepcopy=False), search)
    if best:
        module_c_plot(best, out_dir / "best_module_c.png")
        written.append(out_dir / "best_module_c.png")
    return written


def search_section(sweep: SweepDir, study: optuna.Study, search: SearchFile) -> SearchResults:
    """Writes the plots and best configs, and returns them for the report."""
    plots = write_plots(sweep, study, search)
    configs = write_best_configs(sweep, best_trials(study.get_trials(deepcopy=False), search))
    return SearchResults(plots=plots, best_configs={p.stem: p.read_text() for p in configs})
