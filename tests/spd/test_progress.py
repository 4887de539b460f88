import logging

import pytest

from spd.progress import Progress, ProgressReporter, duration_text, read_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (40.4, "40s"), (59.6, "1m00s"), (100, "1m40s"), (3599, "59m59s"), (7500, "2h05m")],
)
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text


def test_lines_come_at_the_interval_with_the_rate_since_the_first_step(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="spd")
    clock = FakeClock()
    reporter = ProgressReporter(tmp_path / "progress.json", 5000, interval_s=30, clock=clock)
    clock.now += 40  # warm-up and the compile of the first step: not in the rate
    assert reporter.due(1)  # 40 s since the start
    reporter.report(1, 0.5)
    clock.now += 20
    assert not reporter.due(800)
    clock.now += 10
    assert reporter.due(1200)
    progress = reporter.report(1200, 0.0123)  # 1199 steps in 30 s, 3800 to go
    assert caplog.messages == [
        "step 1/5000 (0%)  loss 0.5",
        "step 1200/5000 (24%)  loss 0.0123  40.0 steps/s  ETA 1m35s",
    ]
    assert (progress.step, progress.steps, progress.loss) == (1200, 5000, 0.0123)
    assert (progress.steps_per_s, progress.eta_s) == (39.967, 95.1)
    assert read_progress(tmp_path / "progress.json") == progress
    assert not reporter.due(1201)  # a report restarts the interval


def test_a_line_before_any_step_has_only_the_step(tmp_path):
    reporter = ProgressReporter(tmp_path / "progress.json", 20, interval_s=30, clock=FakeClock())
    assert reporter.report(0, None).line() == "step 0/20 (0%)"


def test_an_absent_or_foreign_progress_file_reads_as_none(tmp_path):
    assert read_progress(tmp_path / "progress.json") is None
    (tmp_path / "progress.json").write_text('{"step": 3}')
    assert read_progress(tmp_path / "progress.json") is None


def test_progress_is_strict():
    with pytest.raises(ValueError, match="loss"):
        Progress(step=1, steps=2, loss=float("nan"), steps_per_s=None, eta_s=None, updated=0)
