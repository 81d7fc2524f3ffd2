"""What `optimizer evaluate` shows while it runs: plain lines without a terminal, a bar on one."""

from __future__ import annotations

import io

from rich.console import Console

from optimizer.evaluate import Job
from optimizer.evaluate_ui import PlainProgress, RichProgress, progress_for


def test_plain_lines_count_each_finished_job_with_its_outcome():
    buf = io.StringIO()
    ui = progress_for(Console(file=buf, width=200))
    assert type(ui) is PlainProgress  # not a terminal
    ui.begin(3, 2)
    first, second = Job("reference", "spans"), Job("sample", "spans", 1)
    ui.started(first)
    ui.started(second)
    ui.finished(first, "expert ok 14.10x", False, 0.0)
    ui.finished(second, "error [harness]: the worker failed", True, 0.25)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "3 job(s) to run; 2 sample(s) already recorded, skipped"
    assert lines[1].startswith("[1/3] spans expert  expert ok 14.10x")
    assert lines[2].startswith("[2/3] spans#1  error [harness]") and "$0.25 so far" in lines[2]
    assert "ETA" in lines[2]


def test_the_bar_on_a_terminal_shows_done_failed_running_and_cost():
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=True, color_system=None)
    ui = progress_for(console)
    assert type(ui) is RichProgress
    ui.begin(4, 0)
    jobs = [Job("sample", "t", i) for i in range(3)]
    for job in jobs:
        ui.started(job)
    ui.finished(jobs[0], "ok 2.000x", False, 1.5)
    ui.finished(jobs[1], "failed_tests [agent]: 2 broken", True, 0.5)
    ui.bar.refresh()
    shown = buf.getvalue()
    ui.close()
    assert "2/4" in shown and "1 failed" in shown and "1 running" in shown and "$2.00" in shown
    assert "[2/4] t#1  failed_tests [agent]" in shown  # each job's line above the bar
