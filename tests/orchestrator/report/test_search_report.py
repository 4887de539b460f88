"""The report of a search: the study's trials in place of its agents' (empty) runs. The study is
written directly with fixed trials (no training), so every row is known."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from orchestrator.report.html import format_value, write_html_report
from orchestrator.report.model import read_sweep_report
from orchestrator.search.launch import SearchSpec, study_of, write_search_sweep
from orchestrator.search.study import ERROR_ATTR, RUN_DIR_ATTR, SURPLUS_ATTR, counted_trials
from orchestrator.state.sweep_dir import JobState, SweepDir
from tests.orchestrator.report.conftest import FinishedSweep
from tests.orchestrator.report.html_page import ReportPage
from tests.orchestrator.search.searches import c_search, search_file, write_search

C_PARAM = "C"
COEFF_PARAM = "losses.importance_minimality.coeff"
DISTRIBUTIONS = {
    C_PARAM: IntDistribution(2, 12),
    COEFF_PARAM: FloatDistribution(1e-4, 1e-2, log=True),
}


def trial(
    state: TrialState,
    c: int,
    coeff: float,
    values: list[float] | None = None,
    intermediate_values: dict[int, float] | None = None,
    user_attrs: dict[str, object] | None = None,
) -> FrozenTrial:
    return create_trial(
        state=state,
        params={C_PARAM: c, COEFF_PARAM: coeff},
        distributions=DISTRIBUTIONS,
        values=values,
        intermediate_values=intermediate_values,
        user_attrs=user_attrs,
    )


def search_with_fixed_trials(tmp_path: Path) -> tuple[SweepDir, optuna.Study]:
    data = c_search()
    spec = SearchSpec(experiment=data["experiment"], search=search_file(data), n_trials=3)
    path = write_search(tmp_path / "search.yaml", data)
    sweep, manifest = write_search_sweep(spec, path, "search", None, 2, ["spd-sweep", "search"])
    for agent in manifest.jobs:  # they found the study done and returned
        agent.state = JobState.COMPLETED
    sweep.write_manifest(manifest)
    study = study_of(sweep, spec)
    for fixed in (
        trial(
            TrialState.COMPLETE,
            4,
            1e-3,
            values=[0.0125, 8.0],
            user_attrs={RUN_DIR_ATTR: "runs/trial-0"},
        ),
        trial(TrialState.PRUNED, 10, 3e-3, intermediate_values={10: 0.5, 20: 0.25}),
        trial(TrialState.FAIL, 6, 2e-4, user_attrs={ERROR_ATTR: "ValueError: diverged"}),
        # asked by two agents at once past n_trials: not one of the search's trials
        trial(TrialState.PRUNED, 7, 5e-3, user_attrs={SURPLUS_ATTR: True}),
    ):
        study.add_trial(fixed)
    return sweep, study


def expected_row(trial: FrozenTrial, objectives: list[str]) -> dict[str, str]:
    values = trial.values or [None] * len(objectives)
    pruned_step = trial.last_step if trial.state == TrialState.PRUNED else None
    return {
        "trial": str(trial.number),
        "state": trial.state.name.lower(),
        C_PARAM: format_value(trial.params[C_PARAM]),
        COEFF_PARAM: format_value(trial.params[COEFF_PARAM]),
        **{name: format_value(value) for name, value in zip(objectives, values, strict=True)},
        "pruned at step": format_value(pruned_step),
        "error": trial.user_attrs.get(ERROR_ATTR, ""),
    }


def test_a_search_report_tables_the_trials_of_its_study_not_its_agents(
    sweep_root: Path, tmp_path: Path
) -> None:
    sweep, study = search_with_fixed_trials(tmp_path)
    objectives = list(c_search()["objectives"])

    index = write_html_report(read_sweep_report(sweep), tmp_path / "report")

    page = ReportPage(index)
    experiment = c_search()["experiment"]
    counted = counted_trials(study.get_trials())
    assert [t.number for t in counted] == [0, 1, 2]  # the surplus trial is no trial of the search
    rows = page.table(experiment, "trials").records()
    assert rows == [expected_row(t, objectives) for t in counted]
    assert rows[1]["pruned at step"] == "20"
    assert not [t for t in page.tables if "runs" in t.classes]  # agents have no run directory
    (summary,) = page.tables[0].records()
    assert summary["best run"] == "—"  # an agent is no run, though its job completes
    (best,) = counted[:1]  # the one complete trial: the whole Pareto front
    assert page.cells[f"{experiment}|best-trial-0"] == str(best.number)
    for name, value in zip(objectives, best.values, strict=True):
        assert page.cells[f"{experiment}|{name}|{best.number}"] == format_value(value)
    html = index.read_text()
    assert "3 trials: 1 complete, 1 pruned, 1 fail" in " ".join(html.split())
    # A trial that trained links its run directory.
    run_dir = os.path.relpath(sweep.path / "runs" / "trial-0", index.parent)
    assert f'<a href="{run_dir}">{best.number}</a>' in html


def test_the_report_of_a_grid_sweep_does_not_import_optuna(
    finished_sweep: FinishedSweep, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from orchestrator.report.html import write_html_report\n"
        "from orchestrator.report.model import read_sweep_report\n"
        "from orchestrator.state.sweep_dir import SweepDir\n"
        "sweep = SweepDir(Path(sys.argv[1]))\n"
        "write_html_report(read_sweep_report(sweep), Path(sys.argv[2]))\n"
        "print('optuna' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(finished_sweep.sweep.path), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False", result.stderr
