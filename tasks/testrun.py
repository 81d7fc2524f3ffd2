"""The tests as a contract (SWE-bench's PASS_TO_PASS), read from JUnit XML, never stdout.

The base's passing test ids are recorded; each must run and pass at the candidate. A test
that fails, is skipped, or is not collected at all (deselected, renamed) breaks the
contract, and the grade names it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from sandbox import Limits, Sandbox, Status
from tasks.grade import TestsResult
from tasks.model import JUNIT_PATH, Task


@dataclass
class JUnit:
    """The test cases of one JUnit XML file: id -> outcome (passed, failed, error, skipped)."""

    outcomes: dict[str, str] = field(default_factory=dict)

    def ids(self, outcome: str) -> list[str]:
        return [t for t, o in self.outcomes.items() if o == outcome]


def parse_junit(data: bytes) -> JUnit | None:
    """Read a JUnit XML file; None when it is not valid XML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    out = JUnit()
    for case in root.iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            outcome = "failed"
        elif case.find("error") is not None:
            outcome = "error"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        # a test reported twice (a call that passed, a teardown that erred) keeps the worst
        if out.outcomes.get(test_id, "passed") == "passed":
            out.outcomes[test_id] = outcome
    return out


def run_tests(
    task: Task, sb: Sandbox, limits: Limits, env: dict[str, str]
) -> tuple[JUnit | None, int | None, str]:
    """Run the task's test command once; its JUnit (None: none written), exit code (None:
    timed out) and stderr tail."""
    assert task.tests is not None
    command = task.tests.command.replace("{junit}", JUNIT_PATH)
    run = sb.run(command, limits=limits, env=env, collect=[JUNIT_PATH])
    if run.status is Status.TIMEOUT:
        return None, None, run.reason
    junit = run.files.get(JUNIT_PATH)
    tail = (run.stderr or run.stdout)[-4000:]
    return (parse_junit(junit) if junit else None), run.exit_code, tail


def judge(
    junit: JUnit | None, exit_code: int | None, contract: list[str], must_pass: list[str]
) -> TestsResult:
    """The candidate's tests against the contract: every id in ``contract`` (the base's
    passing ids) and ``must_pass`` (the task's) must run and pass, and the run must exit 0."""
    if junit is None:
        return TestsResult(
            passed=False, total=0, failures=0, errors=1, skipped=0, exit_code=exit_code,
            failed=["(no JUnit XML written)"], contract=len(contract),
        )  # fmt: skip
    o = junit.outcomes
    broken = []
    for test_id in dict.fromkeys([*contract, *_resolve(must_pass, o)]):
        fate = o.get(test_id)
        if fate != "passed":
            broken.append(f"{test_id} ({'not run' if fate is None else fate})")
    failed = junit.ids("failed") + junit.ids("error")
    total = len(o)
    passed = exit_code == 0 and not failed and not broken and total > 0
    return TestsResult(
        passed=passed, total=total, failures=len(junit.ids("failed")),
        errors=len(junit.ids("error")), skipped=len(junit.ids("skipped")),
        exit_code=exit_code, failed=failed[:50], contract=len(contract), broken=broken[:50],
    )  # fmt: skip


def _resolve(must_pass: list[str], outcomes: dict[str, str]) -> list[str]:
    """Map the task's ids (pytest node ids or JUnit ids) to JUnit ids; unmatched stay as given."""
    out = []
    for want in must_pass:
        hit = next((t for t in outcomes if t.endswith(want) or want.endswith(t)), None)
        if hit is None:
            path, _, name = want.partition("::")
            dotted = path.removesuffix(".py").replace("/", ".")
            hit = next((t for t in outcomes if t == f"{dotted}::{name}"), None)
        out.append(hit or want)
    return out


def reason(tests: TestsResult) -> str:
    """One line: why the tests failed the contract."""
    if tests.exit_code is None:
        return "the tests timed out"
    if tests.total == 0:
        return f"the tests wrote no results (exit {tests.exit_code})"
    if tests.broken:
        more = f" and {len(tests.broken) - 3} more" if len(tests.broken) > 3 else ""
        return (
            f"{len(tests.broken)} of the {tests.contract} tests that pass at the base did not "
            f"pass: {', '.join(tests.broken[:3])}{more}"
        )
    bad = tests.failures + tests.errors
    if bad:
        first = tests.failed[0]
        return f"{bad} of {tests.total} tests failed (exit {tests.exit_code}); first: {first}"
    return f"the test command exited {tests.exit_code}"
