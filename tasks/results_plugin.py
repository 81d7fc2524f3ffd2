"""A pytest plugin the grader loads into the task's test run (``PYTEST_PLUGINS``).

Every test report goes, the moment it is made, to a private copy of the run's stderr taken
before any of the candidate's code is imported. The grader reads these lines as the run
streams them, so what was reported cannot be taken back: library code that rewrites the
JUnit XML at exit, or forces exit code 0, still leaves the live "failed" line behind. Lines
a candidate forges can only add failures (the worst outcome per test wins).

Standard library only; it is copied into the sandbox as ``optimizer_results.py``.
"""

import contextlib
import os

MARK = "@@optimizer-test"
_FD = os.dup(2)


def pytest_runtest_logreport(report):
    line = f"\n{MARK} {report.when} {report.outcome} {report.nodeid}\n"
    with contextlib.suppress(OSError):
        os.write(_FD, line.encode("utf-8", "replace"))
