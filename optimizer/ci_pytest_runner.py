"""Runs pytest-benchmark tests under pytest itself, inside the sandbox (stdlib + pytest only).

``optimizer ci`` writes this file into the sandbox at ``.optimizer/bench/pytest_runner.py``
(``optimizer.ci_pytest.RUNNER_PATH``). It never runs on the host. It has two jobs:

- A *driven workload file* for the harness (``profilers/harness.py``): ``drive(region)``
  runs one in-process pytest session over the tests named in ``region.names`` (pytest node
  ids; None: every test that takes ``benchmark``), with a ``benchmark`` fixture of our own:
  ``benchmark(fn, *args, **kwargs)`` hands ``lambda: fn(*args, **kwargs)`` to
  ``region(nodeid, ...)``, which measures it (timed calls, callgrind markers or cProfile)
  and returns its result. Fixtures, conftest.py, parametrization, classes and
  ``setup_method`` all stay pytest's own, and alive around the measured call. A test that
  fails in any phase, is skipped, never calls ``benchmark``, or is not collected at this
  revision is reported with ``region.failed(nodeid, one line)``.
- A *collector*: ``python3 pytest_runner.py collect OUT_JSON FILE...`` runs
  ``pytest --collect-only`` on the files and writes, as JSON, every collected item (node id,
  whether it takes ``benchmark``, a skip reason, its file and the conftest.py files above it)
  and every file that failed to collect. Collection errors are data: the exit status is 0
  unless pytest itself could not run (a usage or internal error, its exit code).

Both pass the same options (``OPTIONS``), so the collector's node ids are the run's:

- ``--rootdir=.``: node ids are relative to the work dir (the repo root), whatever ini file
  a subfolder has; the run hands pytest the file part of each node id.
- ``-p no:benchmark``: the real pytest-benchmark plugin's fixture would shadow ours (also
  blocked by module name, for a ``pytest_plugins = ["pytest_benchmark.plugin"]``).
- ``-o addopts=`` (and PYTEST_ADDOPTS dropped): a project's --cov, -n auto, -x, -m,
  --benchmark-* stay out of the measurement. Only ``--import-mode`` and ``-p NAME`` /
  ``-p no:NAME`` of the config file's addopts are kept (``_kept_addopts``): they decide
  whether the tests import at all.
- ``-p no:randomly``: pytest-randomly would reorder the tests and reseed ``random``
  differently in every process. ``-p no:timeout``: pytest-timeout's alarms would kill tests
  that callgrind slows 30x (the sandbox and the harness keep their own time limits).
  ``-p no:cacheprovider``: no ``.pytest_cache`` writes, no --lf/--ff reordering.
  ``-o faulthandler_timeout=0``, ``-o required_plugins=`` (a required pytest-benchmark is
  blocked on purpose). The markers and ini keys of the blocked plugins are registered, so
  that ``--strict-markers`` / ``--strict-config`` projects still load.
- ``--continue-on-collection-errors``: one broken file does not stop the others' runs.
- pytest-xdist stays loaded but idle (``-n`` came only from addopts): one process, in order.
- Output capture stays on (pytest's default), so a chatty test cannot flood the sandbox's
  output limit, and ``-q --tb=short`` keeps the report short.
- ``sys.path`` starts with the work dir, as under ``python -m pytest`` from the repo root
  (the harness puts it there; the collector does the same), then pytest's own rules.

A test calling ``benchmark`` twice (pytest-benchmark refuses that) is measured at its first
call; later calls just run. ``benchmark.pedantic(target, args, kwargs, setup, rounds,
warmup_rounds, iterations)`` calls ``setup()`` once, outside the region, and uses the
``(args, kwargs)`` it returns; rounds and iterations are the harness's business, so the
timed repeats reuse the same arguments.
"""

import json
import os
import sys

import pytest

OPTIONS = [
    "-q",
    "--tb=short",
    "--rootdir=.",
    "--continue-on-collection-errors",
    "-p", "no:cacheprovider",
    "-p", "no:benchmark",
    "-p", "no:pytest_benchmark.plugin",
    "-p", "no:randomly",
    "-p", "no:timeout",
    "-o", "addopts=",
    "-o", "required_plugins=",
    "-o", "faulthandler_timeout=0",
]  # fmt: skip
#: Markers of the plugins blocked above, registered so that strict markers still pass.
MARKERS = [
    "benchmark(**kwargs): pytest-benchmark settings (only group is read under optimizer ci)",
    "timeout(seconds): pytest-timeout's limit (not applied under optimizer ci)",
]
#: Ini keys of the blocked plugins, registered so that strict config still passes.
INI_KEYS = [
    "cache_dir",
    "timeout",
    "timeout_method",
    "timeout_func_only",
    "timeout_disable_debugger_detection",
    "session_timeout",
]
#: pytest's exit codes that mean it ran (tests passed or failed, none collected).
RAN = (0, 1, 5)


def one_line(text, limit=300):
    """The line that says what went wrong: pytest's last ``E`` line, else the first line."""
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    errors = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    line = errors[-1] if errors else (lines[0] if lines else "")
    return line[:limit]


def stopped_line(text):
    """Why pytest could not run, from what it wrote to stderr: its last ``E`` line (a
    conftest that does not import) or its last ``error:`` line (a bad option)."""
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    said = [ln for ln in lines if ln.startswith("E ") or "error:" in ln.lower()]
    said = [ln for ln in said if "usage:" not in ln.lower()] or said
    return one_line(said[-1] if said else (lines[-1] if lines else ""))


def report_reason(report):
    """One line for a failed or skipped report."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        reason = one_line(longrepr[2])
        return reason[len("Skipped: ") :] if reason.startswith("Skipped: ") else reason
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    return one_line(message) if message else one_line(longrepr)


def conftests(file):
    """The conftest.py files from the work dir down to ``file``'s folder (repo-relative)."""
    folder = os.path.dirname(file)
    found, parts = [], folder.split("/") if folder else []
    for depth in range(len(parts) + 1):
        path = "/".join(parts[:depth] + ["conftest.py"])
        if os.path.isfile(path):
            found.append(path)
    return found


def _kept_addopts(inipath):
    """``--import-mode`` and ``-p`` options of the config file's addopts (best effort)."""
    import shlex

    raw = None
    if inipath is None or not os.path.isfile(str(inipath)):
        return []
    name = os.path.basename(str(inipath))
    if name.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python < 3.11: no TOML reader in the standard library
            return []
        with open(str(inipath), "rb") as f:
            data = tomllib.load(f)
        if name == "pyproject.toml":  # [tool.pytest.ini_options], or pytest 9's [tool.pytest]
            tool = data.get("tool", {}).get("pytest", {})
            raw = tool.get("ini_options", {}).get("addopts", tool.get("addopts"))
        else:  # pytest 9's pytest.toml: [pytest]
            raw = data.get("pytest", {}).get("addopts")
    else:
        import configparser

        parser = configparser.ConfigParser(interpolation=None)
        parser.read(str(inipath))
        section = "tool:pytest" if name == "setup.cfg" else "pytest"
        if parser.has_option(section, "addopts"):
            raw = parser.get(section, "addopts")
    words = shlex.split(raw) if isinstance(raw, str) else [str(w) for w in raw or []]
    kept, i = [], 0
    while i < len(words):
        word = words[i]
        if word in ("-p", "--import-mode") and i + 1 < len(words):
            kept.append((word, words[i + 1]))
            i += 1
        elif word.startswith("--import-mode="):
            kept.append(("--import-mode", word.split("=", 1)[1]))
        elif word.startswith("-p") and len(word) > 2:
            kept.append(("-p", word[2:]))
        i += 1
    return kept


class Options:
    """The plugin both jobs share: markers and ini keys of the blocked plugins, and the kept
    addopts applied before the first conftest is imported."""

    importmode = None  # the config file's --import-mode, if it names one

    def pytest_addoption(self, parser):
        for key in INI_KEYS:
            parser.addini(key, "(registered by optimizer ci: its plugin is blocked)")

    @pytest.hookimpl(tryfirst=True)
    def pytest_load_initial_conftests(self, early_config):
        try:
            kept = _kept_addopts(early_config.inipath)
        except Exception:  # an unreadable config file: pytest reports it itself
            kept = []
        manager = early_config.pluginmanager
        for option, value in kept:
            if option == "--import-mode":
                self.importmode = value
                early_config.known_args_namespace.importmode = value
            elif value.startswith("no:"):
                manager.set_blocked(value[3:])
            else:  # a name blocked above (pytest_benchmark, say) stays blocked
                manager.import_plugin(value)

    def pytest_configure(self, config):
        for line in MARKERS:
            config.addinivalue_line("markers", line)
        if self.importmode:
            config.option.importmode = self.importmode


class BenchmarkFixture:
    """What a test gets as ``benchmark``: the measured call goes to the harness's region."""

    def __init__(self, node, measure):
        callspec = getattr(node, "callspec", None)
        marker = node.get_closest_marker("benchmark")
        self.name = node.name
        self.fullname = node.nodeid
        self.param = callspec.id if callspec else None
        self.params = dict(callspec.params) if callspec else None
        self.group = marker.kwargs.get("group") if marker else None
        self.extra_info = {}
        self.stats = None
        self.disabled = False
        self.has_error = False
        self._measure = measure

    def __call__(self, fn, *args, **kwargs):
        return self._measure(lambda: fn(*args, **kwargs))

    def pedantic(
        self, target, args=(), kwargs=None, setup=None, rounds=1, warmup_rounds=0, iterations=1
    ):
        def fresh():  # pedantic's setup runs again before every measured call, untimed
            a, k = args, kwargs
            made = setup() if setup is not None else None
            if made is not None:
                a, k = made
            return lambda: target(*a, **dict(k or {}))

        return self._measure(fresh(), fresh if setup is not None else None)

    def weave(self, *args, **kwargs):
        raise NotImplementedError("benchmark.weave is not supported by optimizer ci")

    patch = weave


class Run(Options):
    """The plugin of a measured session: the fixture, the selection, the failure reports."""

    def __init__(self, region):
        self.region = region
        names = getattr(region, "names", None)
        self.wanted = None if names is None else list(dict.fromkeys(names))
        self.selected = None if names is None else set(self.wanted)
        self.measured = set()  # node ids whose first benchmark call reached the region
        self.reported = set()  # node ids already reported to region.failed

    def failed(self, nodeid, message):
        if nodeid not in self.reported and (self.selected is None or nodeid in self.selected):
            self.reported.add(nodeid)
            report = getattr(self.region, "failed", None)
            if report is not None:
                report(nodeid, message)

    @pytest.fixture
    def benchmark(self, request):
        nodeid = request.node.nodeid

        def measure(fn, fresh=None):
            if nodeid in self.measured:  # a second call: run it, measure only the first
                return fn()
            self.measured.add(nodeid)
            return self.region(nodeid, fn, fresh) if fresh else self.region(nodeid, fn)

        return BenchmarkFixture(request.node, measure)

    def pytest_collectreport(self, report):
        if report.failed:
            why = f"cannot be collected: {report_reason(report)}"
            for name in self.wanted or []:
                if name == report.nodeid or name.startswith(report.nodeid + "::"):
                    self.failed(name, why)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        if self.wanted is None:
            keep = [i for i in items if "benchmark" in getattr(i, "fixturenames", ())]
        else:
            keep = [i for i in items if i.nodeid in self.selected]
            found = {i.nodeid for i in keep}
            for name in self.wanted:
                if name not in found:
                    self.failed(name, "no such test at this revision")
        kept = {id(i) for i in keep}
        dropped = [i for i in items if id(i) not in kept]
        items[:] = keep
        if dropped:
            config.hook.pytest_deselected(items=dropped)

    def pytest_runtest_logreport(self, report):
        nodeid = report.nodeid
        if report.failed:
            phase = "" if report.when == "call" else f"error in {report.when}: "
            self.failed(nodeid, phase + report_reason(report))
        elif report.skipped:
            what = "xfailed" if hasattr(report, "wasxfail") else "skipped"
            self.failed(nodeid, f"{what} ({report_reason(report) or 'no reason given'})")
        elif report.when == "teardown" and nodeid not in self.measured:
            self.failed(nodeid, "passed without calling benchmark(...)")


class StderrTail:
    """sys.stderr, remembering what was written to it: pytest prints why it could not start
    there (a conftest that does not import, a bad option), and that line names the fix."""

    def __init__(self, stream):
        self.stream, self.text = stream, ""

    def write(self, data):
        self.text = (self.text + data)[-4000:]
        return self.stream.write(data)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(args, plugin):
    """``pytest.main`` in this process; its exit code, and why when it could not run."""
    os.environ.pop("PYTEST_ADDOPTS", None)
    os.environ.pop("PYTEST_PLUGINS", None)
    real = sys.stderr
    sys.stderr = tail = StderrTail(real)
    try:
        code = int(pytest.main([*args, *OPTIONS], plugins=[plugin]))
    finally:
        sys.stderr = real
    return code, stopped_line(tail.text) if code not in RAN else ""


def drive(region):
    """The harness's entry: one pytest session over ``region.names`` (node ids)."""
    plugin = Run(region)
    files = [] if plugin.wanted is None else [n.split("::", 1)[0] for n in plugin.wanted]
    code, why = main(list(dict.fromkeys(files)), plugin)
    if code not in RAN:
        left = [n for n in plugin.wanted or [] if n not in plugin.measured]
        raise RuntimeError(
            f"pytest stopped with exit code {code} before measuring {len(left)} test(s)"
            + (f": {why}" if why else "")
        )


class Collect(Options):
    """The collector's plugin: what ``pytest --collect-only`` found, and what it could not."""

    def __init__(self):
        self.items, self.errors = [], []

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append({"file": report.nodeid, "reason": report_reason(report)})

    def pytest_collection_finish(self, session):
        for item in session.items:
            file = item.nodeid.split("::", 1)[0]
            self.items.append(
                {
                    "nodeid": item.nodeid,
                    "file": file,
                    "conftests": conftests(file),
                    "benchmark": "benchmark" in getattr(item, "fixturenames", ()),
                    "skip": skip_reason(item),
                }
            )


def skip_reason(item):
    """Why the item is skipped at setup whatever happens (its skip / true skipif marks)."""
    try:
        from _pytest.skipping import evaluate_skip_marks  # skipif conditions, as pytest does

        skipped = evaluate_skip_marks(item)
        return (skipped.reason or "skipped") if skipped else None
    except (Exception, pytest.fail.Exception):  # a bad condition, or another pytest
        for mark in item.iter_markers("skip"):
            return str(mark.kwargs.get("reason") or (mark.args[0] if mark.args else "skipped"))
        return None


def collect_main(out, files):
    """``collect OUT_JSON FILE...``: write what collection found to OUT_JSON."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.getcwd())  # as the harness does, and `python -m pytest`
    plugin = Collect()
    code, why = main([*files, "--collect-only", "-q"], plugin)
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    result = {"exit_code": code, "why": why, "items": plugin.items, "errors": plugin.errors}
    with open(out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(out + ".tmp", out)
    return 0 if code in RAN else code


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "collect":
        sys.exit("usage: pytest_runner.py collect OUT_JSON FILE...")
    sys.exit(collect_main(sys.argv[2], sys.argv[3:]))
