"""The progress of long steps (``optimizer.console.Steps``): a bar in a terminal, plain
lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

from optimizer.console import Steps


def test_a_terminal_gets_a_bar_counting_steps_with_each_line_above_it() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    with Steps(console, 3) as steps:
        assert steps.bar is not None
        (task,) = steps.bar.tasks
        steps.start("[1/3] validating spans (python)")
        assert (task.total, task.completed) == (3, 0) and "validating spans" in task.description
        steps.done("  spans: ok (12 s)")
        assert task.completed == 1
        steps.start("[2/3] validating wordfreq (python)")
        steps.done("  wordfreq: failed (3 s): the expert is not faster")
        assert task.completed == 2
    shown = buf.getvalue()
    assert "  spans: ok (12 s)" in shown and "the expert is not faster" in shown
    assert "2/3" in shown  # the bar's count as last drawn


def test_a_log_gets_one_plain_line_per_start_and_end(capsys) -> None:
    with Steps(Console(stderr=True), 2) as steps:
        assert steps.bar is None
        steps.start("[1/2] validating spans (python)")
        steps.done("  spans: ok (12 s)")
    assert capsys.readouterr().err.splitlines() == [
        "[1/2] validating spans (python)",
        "  spans: ok (12 s)",
    ]
