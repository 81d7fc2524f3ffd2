"""The tests as a contract (SWE-bench's PASS_TO_PASS), read from JUnit XML, never stdout.

The base's passing test ids are recorded; each must run and pass at the candidate. A test
that fails, is skipped, or is not collected at all (deselected, renamed) breaks the
contract, and the grade names it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import Limits, Sandbox, Status
from tasks.grade import TestsResult
from tasks.model import JUNIT_PATH, Task

#: Where the live-results plugin goes in the sandbox, and the variables that load it.
PLUGIN_DIR = ".optimizer/plugin"
PLUGIN_FILES = {
    f"{PLUGIN_DIR}/optimizer_results.py": Path(__file__).with_name("results_plugin.py").read_bytes()
}
MARK = "@@optimizer-test"
_WORST = {"passed": 0, "skipped": 1, "failed": 2}


def plugin_env(env: dict[str, str]) -> dict[str, str]:
    """The test run's variables: the task's, plus what loads the live-results plugin."""
    path = PLUGIN_DIR + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
    return {**env, "PYTEST_PLUGINS": "optimizer_results", "PYTHONPATH": path}


def live_results(stderr: str) -> dict[str, str]:
    """The plugin's lines: nodeid -> the worst outcome any phase of it reported."""
    out: dict[str, str] = {}
    for line in stderr.splitlines():
        if not line.startswith(MARK + " "):
            continue
        parts = line.split(" ", 3)
        if len(parts) != 4 or parts[2] not in _WORST:
            continue
        _, when, outcome, nodeid = parts
        outcome = "passed" if when != "call" and outcome == "passed" else outcome
        if _WORST[outcome] >= _WORST.get(out.get(nodeid, "passed"), 0):
            out[nodeid] = outcome
    return out


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
) -> tuple[JUnit | None, int | None, str, dict[str, str]]:
    """Run the task's test command once; its JUnit (None: none written), exit code (None:
    timed out), stderr tail, and the live results the plugin streamed."""
    assert task.tests is not None
    command = task.tests.command.replace("{junit}", JUNIT_PATH)
    run = sb.run(command, limits=limits, env=plugin_env(env), collect=[JUNIT_PATH])
    live = live_results(run.stderr)
    tail = "\n".join(ln for ln in (run.stderr or run.stdout).splitlines() if MARK not in ln)
    if run.status is Status.TIMEOUT:
        return None, None, run.reason, live
    junit = run.files.get(JUNIT_PATH)
    return (parse_junit(junit) if junit else None), run.exit_code, tail[-4000:], live


def judge(
    junit: JUnit | None,
    exit_code: int | None,
    contract: list[str],
    must_pass: list[str],
    live: dict[str, str] | None = None,
    live_contract: int = 0,
) -> TestsResult:
    """The candidate's tests against the contract: every id in ``contract`` (the base's
    passing ids) and ``must_pass`` (the task's) must run and pass, and the run must exit 0.

    Where the base's run streamed live results (``live_contract`` tests passed live), the
    candidate's live results must show no failure and at least as many passes: the JUnit
    XML, written inside the candidate's process, is not taken alone."""
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
    if live is not None and live_contract:
        broken += [f"{n} (failed, reported live)" for n, v in live.items() if v == "failed"]
        passed_live = sum(v == "passed" for v in live.values())
        if passed_live < live_contract:
            broken.append(
                f"(only {passed_live} tests passed live, the base had {live_contract}: "
                "results were hidden or rewritten)"
            )
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
