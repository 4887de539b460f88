"""The report's loss figure: evaluations and training points drawn with markers (a run of one
logged step still shows its values), titled with the run it shows."""

import dataclasses

from orchestrator.report.figures import overlaid_loss_curves
from orchestrator.report.model import Curve, read_sweep_report
from spd.metric_names import loss_name
from tests.orchestrator.report.conftest import FinishedSweep


def test_loss_curves_mark_train_and_eval_points_and_name_their_run(
    finished_sweep: FinishedSweep,
) -> None:
    experiment = read_sweep_report(finished_sweep.sweep).experiments[0]
    run = experiment.completed[0]
    assert run.loss_curves and run.eval_loss_curves
    # As if the run had logged one step: a line alone would draw nothing.
    first_points = {term: Curve(c.steps[:1], c.values[:1]) for term, c in run.loss_curves.items()}
    short_run = dataclasses.replace(run, loss_curves=first_points)
    one_run = dataclasses.replace(experiment, runs=[short_run])

    fig = overlaid_loss_curves(one_run)

    assert fig is not None
    assert fig.get_suptitle().startswith(run.name)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(run.loss_curves.keys() | run.eval_loss_curves.keys())
    for ax in panels:
        lines = ax.get_lines()
        assert lines and all(line.get_marker() not in (None, "None", "") for line in lines)
        term = loss_name(ax.get_title())
        drawn = {tuple(line.get_xdata()) for line in lines}
        assert drawn == {tuple(first_points[term].steps), tuple(run.eval_loss_curves[term].steps)}
