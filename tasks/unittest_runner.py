"""The grader's unittest runner: ``python -m optimizer_unittest ARGS`` is ``python -m unittest
ARGS`` (same arguments, same discovery, same exit code) with a result class that

* streams every outcome, the moment it is known, to a private copy of stderr taken before
  any test code is imported (the ``@@optimizer-test`` lines of ``results_plugin.py``), and
* writes JUnit XML to ``.optimizer/junit.xml`` (the path as of start-up) when the run ends.

The grader reads both: the XML is written inside the candidate's own process, so it is not
taken alone. Test ids are ``module.Class::method``, as pytest's JUnit XML names unittest
tests; a failed ``subTest`` fails its test; an error in ``setUpClass``/``setUpModule`` is
``module.Class::setUpClass``; a module that cannot be imported is ``module::(import)``.

Standard library only; it is copied into the sandbox as ``optimizer_unittest.py``.
"""

import contextlib
import os
import re
import sys
import time
import unittest
import xml.etree.ElementTree as ET

MARK = "@@optimizer-test"
_FD = os.dup(2)
JUNIT = os.path.abspath(os.path.join(".optimizer", "junit.xml"))
_HOLDER = re.compile(r"^(\w+) \((.+)\)$")
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def test_id(test):
    """``module.Class::method`` for a test (or the error holders unittest makes)."""
    if type(test).__name__ == "_FailedTest":  # a module the loader could not import
        return f"{getattr(test, '_testMethodName', 'unknown')}::(import)"
    if isinstance(test, unittest.TestCase):
        # id() is "module.Class.method", and a doctest's is its own dotted name: taking the
        # class and method from the type would give all of a module's doctests one id.
        dotted, _, name = str(test.id()).rpartition(".")
        return f"{dotted or type(test).__module__}::{name}"
    text = str(test.id() if hasattr(test, "id") else test)
    m = _HOLDER.match(text)  # "setUpClass (pkg.mod.Class)"
    return f"{m.group(2)}::{m.group(1)}" if m else f"{text}::(error)"


def _live(outcome, tid):
    line = f"\n{MARK} call {outcome} {tid}\n"
    with contextlib.suppress(OSError):
        os.write(_FD, line.encode("utf-8", "replace"))


class JUnitResult(unittest.TextTestResult):
    """A TextTestResult that also keeps each test's worst outcome, for the XML and live."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = {}  # id -> [outcome, seconds, message, detail]
        self._started = {}

    def _record(self, test, outcome, message="", detail=""):
        tid = test_id(test)
        took = max(0.0, time.perf_counter() - self._started.get(tid, time.perf_counter()))
        old = self.cases.get(tid)
        if old is None or _RANK[outcome] > _RANK[old[0]]:
            self.cases[tid] = [outcome, took, message, detail]
        _live("failed" if outcome == "error" else outcome, tid)

    def _text(self, test, err):
        with contextlib.suppress(Exception):
            return self._exc_info_to_string(err, test)
        return repr(err[1])

    def startTest(self, test):
        self._started[test_id(test)] = time.perf_counter()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", repr(err[1])[:500], self._text(test, err))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", repr(err[1])[:500], self._text(test, err))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", str(reason)[:500])

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "skipped", "expected failure")  # as pytest reports an xfail

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:  # the test itself fails; its id stays the test's
            kind = "failed" if issubclass(err[0], test.failureException) else "error"
            self._record(test, kind, f"{subtest}: {err[1]!r}"[:500], self._text(test, err))


def write_junit(cases, path=JUNIT):
    """The cases as one JUnit XML testsuite (pytest's layout: classname + name)."""
    suite = ET.Element("testsuite", name="unittest", tests=str(len(cases)))
    counts = {"failed": 0, "error": 0, "skipped": 0}
    for tid, (outcome, took, message, detail) in cases.items():
        classname, _, name = tid.rpartition("::")
        case = ET.SubElement(suite, "testcase", classname=classname, name=name)
        case.set("time", f"{took:.3f}")
        if outcome in counts:
            counts[outcome] += 1
            tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[outcome]
            ET.SubElement(case, tag, message=message).text = detail or None
    suite.set("failures", str(counts["failed"]))
    suite.set("errors", str(counts["error"]))
    suite.set("skipped", str(counts["skipped"]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


class JUnitRunner(unittest.TextTestRunner):
    """unittest's own runner (text to stderr), whose result also writes the JUnit XML."""

    resultclass = JUnitResult
    _last = None

    def run(self, test):
        result = None
        try:
            result = super().run(test)
        finally:
            cases = getattr(result or self._last, "cases", {})
            write_junit(cases)
        return result

    def _makeResult(self):
        self._last = super()._makeResult()
        return self._last


def main():
    sys.argv[0] = "python -m unittest"
    unittest.main(module=None, testRunner=JUnitRunner)


if __name__ == "__main__":
    main()
