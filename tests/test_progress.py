"""Progress bars: named bars in one display, and bars that draw nothing when hidden."""

from deepmmsearch.progress import Bars, progress_bars


def test_bars_are_added_by_name_and_updated():
    with progress_bars() as bars:
        bars.update("episodes", completed=2, total=10)
        bars.update("episodes", advance=3, note="loss 0.5")
        bars.update("steps", total=4)
        on_start, on_done = bars.counter("episodes run")
        on_start(8, 3)
        on_done(object())
        tasks = {task.description: task for task in bars._progress.tasks}
    assert set(tasks) == {"episodes", "steps", "episodes run"}
    assert (tasks["episodes run"].completed, tasks["episodes run"].total) == (4, 8)
    assert (tasks["episodes"].completed, tasks["episodes"].total) == (5, 10)
    assert tasks["episodes"].fields["note"] == "loss 0.5"
    assert (tasks["steps"].completed, tasks["steps"].total) == (0, 4)


def test_hidden_bars_draw_nothing(capsys):
    with progress_bars(show=False) as bars:
        bars.update("episodes", completed=1, total=2)
    assert isinstance(bars, Bars) and bars._progress is None
    assert capsys.readouterr() == ("", "")
