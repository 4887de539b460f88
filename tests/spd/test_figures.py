import numpy as np
import pytest

from spd.figures import ci_per_feature_figure, panel_grid


@pytest.mark.parametrize(("n_panels", "rows", "cols"), [(1, 1, 1), (3, 1, 3), (4, 1, 4), (9, 3, 4)])
def test_panels_wrap_into_rows_of_at_most_four(n_panels, rows, cols):
    fig, axes = panel_grid(n_panels, 4, 3)
    assert len(axes) == n_panels
    assert tuple(fig.get_size_inches()) == (4 * cols, 3 * rows)
    assert sum(ax.get_visible() for ax in fig.axes) == n_panels


def test_ci_figure_has_one_visible_panel_per_module():
    probe_ci = {f"layers.{i}.mlp_in": np.eye(5) for i in range(6)}
    fig = ci_per_feature_figure(probe_ci)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    # The probe count is named as such: it is not the summary's `alive` (training distribution).
    assert titles == [
        f"layers.{i}.mlp_in\n5 of 5 components active on single-feature probes" for i in range(6)
    ]
