import math

import pytest

from spd.config import LRSchedule
from spd.lr_schedule import lr_at


def test_cosine_runs_from_one_to_zero():
    schedule = LRSchedule(type="cosine")
    assert lr_at(0, 100, 1.0, schedule) == pytest.approx(1.0)
    assert lr_at(99, 100, 1.0, schedule) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(33, 100, 2.0, schedule) == pytest.approx(2.0 * math.cos(0.5 * math.pi * 33 / 99))


def test_linear_and_constant():
    assert lr_at(25, 100, 1.0, LRSchedule(type="linear")) == pytest.approx(0.75)
    assert lr_at(77, 100, 0.3, LRSchedule(type="constant")) == pytest.approx(0.3)


def test_warmup_ramps_linearly_then_decays_over_the_rest():
    schedule = LRSchedule(type="linear", warmup_frac=0.1)
    assert [lr_at(s, 100, 1.0, schedule) for s in (0, 5)] == pytest.approx([0.0, 0.5])
    assert lr_at(10, 100, 1.0, schedule) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, schedule) == pytest.approx(1 - 45 / 90)


def test_final_frac_is_the_floor():
    schedule = LRSchedule(type="cosine", final_frac=0.1)
    assert lr_at(99, 100, 1.0, schedule) == pytest.approx(0.1)
    assert lr_at(0, 100, 1.0, schedule) == pytest.approx(1.0)
