"""The tests as a contract (SWE-bench's PASS_TO_PASS), read from JUnit XML, never stdout.

The base's passing test ids are recorded; each must run and pass at the candidate. A test
that fails, is skipped, or is not collected at all (deselected, renamed) breaks the
contract, and the grade names it. The base's failing ids are recorded too: the same ids may
fail at the candidate (known failures, excused by id), and then, only then, a nonzero exit
is accepted where the base's was the same.

Three runners (``tests.runner``): ``junit``, any command that writes JUnit XML to
``{junit}``; ``pytest``, a pytest command (``--junitxml`` added when missing); ``unittest``,
a ``python -m unittest ...`` command, run as ``python -m optimizer_unittest ...`` (the
grader's own runner, :mod:`tasks.unittest_runner`). pytest and unittest also stream each
result live to a private copy of stderr (``@@optimizer-test`` lines), which the XML,
written inside the candidate's process, cannot take back.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import Limits, Sandbox, Status
from tasks.grade import TestsResult
from tasks.model import JUNIT_PATH, Task, TestsSpec

#: Where the live-results plugin goes in the sandbox, and the variables that load it.
PLUGIN_DIR = ".optimizer/plugin"
#: The unittest runner's module name (``python -m unittest`` becomes ``-m`` this).
UNITTEST_MODULE = "optimizer_unittest"
_HERE = Path(__file__).parent
PLUGIN_FILES = {
    f"{PLUGIN_DIR}/optimizer_results.py": (_HERE / "results_plugin.py").read_bytes(),
    f"{PLUGIN_DIR}/{UNITTEST_MODULE}.py": (_HERE / "unittest_runner.py").read_bytes(),
}
_UNITTEST = re.compile(r"(?<!\S)-m\s+unittest(?!\S)")
MARK = "@@optimizer-test"
_WORST = {"passed": 0, "skipped": 1, "failed": 2}


def plugin_env(env: dict[str, str]) -> dict[str, str]:
    """The test run's variables: the task's, plus what loads the live-results plugin."""
    path = PLUGIN_DIR + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
    return {**env, "PYTEST_PLUGINS": "optimizer_results", "PYTHONPATH": path}


def command_for(spec: TestsSpec) -> str:
    """The shell command that runs the task's tests, as the grader runs it."""
    command = spec.command
    if spec.runner == "pytest" and "{junit}" not in command:
        command += " --junitxml={junit}"
    elif spec.runner == "unittest":
        command = _UNITTEST.sub(f"-m {UNITTEST_MODULE}", command)
    return command.replace("{junit}", JUNIT_PATH)


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


@dataclass
class TestRun:
    """One run of the test command, as the harness saw it."""

    junit: JUnit | None  # None: no (valid) JUnit XML was written
    exit_code: int | None  # None: timed out
    tail: str  # the end of stderr (without the live lines) and stdout, for a person
    live: dict[str, str]  # the live results: nodeid -> worst outcome
    missing: list[str] = field(default_factory=list)  # modules the run could not import


def run_tests(task: Task, sb: Sandbox, limits: Limits, env: dict[str, str]) -> TestRun:
    """Run the task's test command once (see :func:`command_for`)."""
    assert task.tests is not None
    command = command_for(task.tests)
    run = sb.run(command, limits=limits, env=plugin_env(env), collect=[JUNIT_PATH])
    live = live_results(run.stderr)
    tail = _tail(run.stdout, run.stderr, "" if run.ok else run.reason)
    missing = missing_modules(run.stderr + "\n" + run.stdout)
    if run.status is Status.TIMEOUT:
        return TestRun(None, None, tail, live, missing)
    junit = run.files.get(JUNIT_PATH)
    return TestRun(parse_junit(junit) if junit else None, run.exit_code, tail, live, missing)


def _tail(stdout: str, stderr: str, note: str) -> str:
    err = "\n".join(ln for ln in stderr.splitlines() if MARK not in ln)
    err, out = re.sub(r"\n{3,}", "\n\n", err).strip(), stdout.strip()
    keep = 2000 if err and out else 4000
    parts = [note] if note else []
    parts += [err[-keep:]] if err else []
    parts += [f"--- stdout ---\n{out[-keep:]}"] if out else []
    return "\n".join(parts)


_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '?([\w.]+)'?")


def missing_modules(text: str) -> list[str]:
    """The modules a run's output says could not be imported, in order, each once."""
    return list(dict.fromkeys(_NO_MODULE.findall(text)))


def judge(
    junit: JUnit | None,
    exit_code: int | None,
    contract: list[str],
    must_pass: list[str],
    live: dict[str, str] | None = None,
    live_contract: int = 0,
    *,
    known_failures: Collection[str] = (),
    known_live: Collection[str] = (),
    base_exit: int | None = 0,
) -> TestsResult:
    """The candidate's tests against the contract: every id in ``contract`` (the base's
    passing ids) and ``must_pass`` (the task's) must run and pass; any other failure must be
    one of ``known_failures`` (the base's failing ids: excused); and the run must exit 0, or,
    where every failure is excused, exit as the base did (``base_exit``, nonzero).

    Where the base's run streamed live results (``live_contract`` tests passed live), the
    candidate's live results must show no failure but the base's (``known_live``) and at
    least as many passes: the JUnit XML, written inside the candidate's process, is not
    taken alone."""
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
    known = set(known_failures)
    excused = [t for t in failed if t in known]
    new = [t for t in failed if t not in known]
    if live is not None and live_contract:
        known_l = set(known_live)
        broken += [
            f"{n} (failed, reported live)"
            for n, v in live.items()
            if v == "failed" and n not in known_l
        ]
        passed_live = sum(v == "passed" for v in live.values())
        if passed_live < live_contract:
            broken.append(
                f"(only {passed_live} tests passed live, the base had {live_contract}: "
                "results were hidden or rewritten)"
            )
    exit_ok = exit_code == 0 or (exit_code == base_exit and base_exit not in (0, None) and excused)
    total = len(o)
    passed = bool(exit_ok) and not new and not broken and total > 0
    return TestsResult(
        passed=passed, total=total, failures=len(junit.ids("failed")),
        errors=len(junit.ids("error")), skipped=len(junit.ids("skipped")),
        exit_code=exit_code, failed=failed[:50], contract=len(contract), broken=broken[:50],
        excused=excused[:50], base_exit_code=base_exit,
    )  # fmt: skip


def _resolve(must_pass: list[str], outcomes: dict[str, str]) -> list[str]:
    """Map the task's ids to JUnit ids (``module.Class::name``): JUnit ids as they are, pytest
    node ids (``pkg/test_x.py::Class::name``) and unittest ids (``pkg.test_x.Class.name``);
    unmatched ids stay as given (and then fail as not run)."""
    out = []
    for want in must_pass:
        if "::" in want:
            path, *names = want.split("::")
            dotted = path.removesuffix(".py").replace("/", ".")
            forms = [want, f"{'.'.join([dotted, *names[:-1]])}::{names[-1]}"]
        else:
            head, _, name = want.rpartition(".")
            forms = [f"{head}::{name}"]
        hit = next((f for f in forms if f in outcomes), None)
        if hit is None:
            hit = next((t for t in outcomes if t.endswith(want) or want.endswith(t)), None)
        out.append(hit or want)
    return out


def missing_reason(modules: list[str], base: bool = False) -> str:
    """The cause, when a run could not import a module: a missing dependency, said so."""
    names = ", ".join(f"'{m}'" for m in modules[:3])
    what = f"module {names}" if len(modules) == 1 else f"modules {names}"
    it = "it" if len(modules) == 1 else "them"
    fix = f"add {it} to setup.pip" if base else "not in the task's environment (setup.pip)"
    return f"the tests could not import {what}: a missing dependency? {fix}"


def reason(tests: TestsResult, missing: Collection[str] = (), base: bool = False) -> str:
    """One line: why the tests failed the contract. ``missing``: modules the run could not
    import that the base's run could (a missing dependency is named as such)."""
    if tests.exit_code is None:
        return "the tests timed out"
    why = missing_reason(list(missing), base) if missing else ""
    if tests.total == 0:
        wrote = f"the tests wrote no results (exit {tests.exit_code})"
        return f"{why} ({wrote})" if why else wrote
    if tests.broken:
        more = f" and {len(tests.broken) - 3} more" if len(tests.broken) > 3 else ""
        listed = f"{', '.join(tests.broken[:3])}{more}"
        n = sum(not b.startswith("(") and not b.endswith("reported live)") for b in tests.broken)
        text = (
            f"{n} of the {tests.contract} tests that pass at the base did not pass: {listed}"
            if n
            else f"the live results contradict the JUnit XML: {listed}"
        )
        return f"{why} ({text})" if why else text
    new = [t for t in tests.failed if t not in tests.excused]
    if new:
        known = f", {len(tests.excused)} known failures excused" if tests.excused else ""
        text = (
            f"{len(new)} of {tests.total} tests failed (exit {tests.exit_code}{known}); "
            f"first: {new[0]}"
        )
        return f"{why} ({text})" if why else text
    if tests.excused and tests.base_exit_code:
        return (
            f"the test command exited {tests.exit_code}, the base's exited "
            f"{tests.base_exit_code} (with the same known failures)"
        )
    return f"the test command exited {tests.exit_code}"
