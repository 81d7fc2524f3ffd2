"""pytest-benchmark tests for `optimizer ci`, run under pytest itself (the host side).

Static discovery (``optimizer.ci_benchmarks``) cannot run what real suites use:
parametrized benchmarks, conftest fixtures, classes with ``setup_method``. So here pytest
does the finding and the running, in the sandbox, through one stdlib + pytest file,
``optimizer/ci_pytest_runner.py``, written at ``RUNNER_PATH`` (see its docstring for the
pytest options and why):

1. ``candidate_files(tree)``: on the host, statically (no project code is imported), the
   test files (``test_*.py``, ``*_test.py``) that mention ``benchmark``.
2. ``collect(sb, files)``: in the head sandbox, ``pytest --collect-only`` on them; one
   :class:`~optimizer.ci_benchmarks.Benchmark` per collected item that takes the
   ``benchmark`` fixture (its name is the pytest node id), and a "skipped" line for each
   file that failed to collect and each benchmark skipped whatever happens.
3. Measuring: the runner is a *driven* workload file (``drive(region)``, see
   ``profilers.harness.driven``). One benchmark is
   ``Workload(kind="file", target=RUNNER_PATH, name=nodeid)`` for ``measure_wall`` and
   ``profile_hotspots``; a batch is one harness target ``{"name": ..., "target":
   RUNNER_PATH, "names": [nodeid, ...]}``, run as a single pytest session. A test that
   fails, is skipped, never calls ``benchmark`` or does not exist at a revision is
   reported as that node id's error, never as a number.

Each benchmark's ``files`` are its test file and the conftest.py files above it: head's go
to both sides, so base and head run the same test code against their own project code.
Results travel through files (``RunResult.files``), never through stdout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from optimizer.ci_benchmarks import SKIP_DIRS, WRAPPER_DIR, Benchmark
from optimizer.errors import UserError
from profilers.common import OUT_DIR, last_line
from sandbox import Limits, RunResult, Sandbox

#: Where the runner lives in a sandbox copy, the same for both revisions.
RUNNER_PATH = f"{WRAPPER_DIR}/pytest_runner.py"
_RUNNER_SOURCE = Path(__file__).with_name("ci_pytest_runner.py")
#: Where the collector writes what it found (collected from the run, never read from stdout).
COLLECT_OUT = f"{OUT_DIR}/pytest-collect.json"
ORIGIN = "pytest-benchmark"


class CollectedItem(BaseModel):
    """One test pytest collected."""

    nodeid: str
    file: str
    conftests: list[str] = Field(default_factory=list)
    benchmark: bool = Field(description="Whether it takes the benchmark fixture.")
    skip: str | None = Field(None, description="Why it is skipped whatever happens, if it is.")


class CollectError(BaseModel):
    """A file pytest could not collect, and one line of why."""

    file: str
    reason: str


class CollectReport(BaseModel):
    """The collector's result file."""

    exit_code: int
    why: str = Field("", description="Why pytest could not run, when it could not.")
    items: list[CollectedItem] = Field(default_factory=list)
    errors: list[CollectError] = Field(default_factory=list)


def runner_file() -> bytes:
    """The runner's source, to write at ``RUNNER_PATH`` in a sandbox copy."""
    return _RUNNER_SOURCE.read_bytes()


def is_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def candidate_files(tree: Path) -> list[str]:
    """Test files under ``tree`` whose source mentions ``benchmark`` (repo-relative, sorted).

    Hidden and environment folders are skipped, as ``ci_benchmarks`` does; a file that links
    outside the tree is never read.
    """
    root = tree.resolve()
    found = []
    for parent, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in files:
            path = Path(parent) / name
            if not is_test_file(name) or not path.is_file():
                continue
            if path.resolve().is_relative_to(root) and b"benchmark" in path.read_bytes():
                found.append(path.relative_to(tree).as_posix())
    return sorted(found)


def conftest_files(tree: Path, files: list[str]) -> list[str]:
    """The conftest.py files in the folders from the root down to each of ``files``."""
    found: set[str] = set()
    for file in files:
        folders = Path(file).parent.parts
        for depth in range(len(folders) + 1):
            rel = Path(*folders[:depth], "conftest.py")
            if (tree / rel).is_file():
                found.add(rel.as_posix())
    return sorted(found)


def collect(
    sb: Sandbox,
    files: list[str],
    *,
    python: str = "python3",
    limits: Limits | None = None,
) -> tuple[list[Benchmark], list[str]]:
    """Collect ``files`` with pytest in ``sb`` (head): the benchmarks, and what was skipped.

    Benchmarks come in pytest's order. The runner is written for this run (``RUNNER_PATH``;
    before sealing it stays in the tree). Raises a one-line UserError when the collector
    itself fails (no pytest, a conftest that does not import, a timeout).
    """
    if not files:
        return [], []
    r = sb.run(
        [python, RUNNER_PATH, "collect", COLLECT_OUT, *files],
        limits=limits,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        collect=[COLLECT_OUT],
        files={RUNNER_PATH: runner_file()},
    )
    found = _report(r)
    benchmarks, skipped = [], []
    for error in found.errors:
        skipped.append(f"{error.file}: cannot be collected ({error.reason})")
    for item in found.items:
        if not item.benchmark:
            continue
        if item.skip is not None:
            skipped.append(f"{item.nodeid}: skipped ({item.skip})")
            continue
        benchmarks.append(
            Benchmark(
                name=item.nodeid,
                origin=ORIGIN,
                kind="file",
                path=RUNNER_PATH,
                files=[item.file, *(c for c in item.conftests if c != item.file)],
            )
        )
    return benchmarks, skipped


def _report(r: RunResult) -> CollectReport:
    """The collector's result, or a UserError naming why there is none."""
    fix = (
        "make `python3 -m pytest --collect-only` work on these files at the head revision "
        "(the packages the tests import go in [tool.optimizer.ci] pip)"
    )
    raw = r.files.get(COLLECT_OUT)
    try:
        found: CollectReport | None = CollectReport.model_validate(json.loads(raw or b""))
    except (ValueError, ValidationError):
        found = None
    detail = (found.why if found else "") or last_line(r.stderr) or last_line(r.stdout)
    detail = detail[2:].strip() if detail.startswith("E ") else detail
    if "No module named 'pytest'" in r.stderr and found is None:
        raise UserError(
            "pytest is not installed where the benchmarks run",
            'add "pytest" to [tool.optimizer.ci] pip',
        )
    if not r.ok:
        why = r.reason or r.status.value
        timeout = r.status.value == "timeout"
        raise UserError(
            f"collecting the pytest-benchmark tests failed ({why})"
            + (f": {detail}" if detail else ""),
            "raise the run's time limit, or " + fix if timeout else fix,
        )
    if found is None:
        what = "no result file" if raw is None else "a malformed result file"
        raise UserError(
            f"collecting the pytest-benchmark tests left {what}"
            + (f": {detail}" if detail else ""),
            fix,
        )
    return found
