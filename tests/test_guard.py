"""The static guard and the protected-files check, on real unified diffs."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tasks.guard import (
    apply_hunks,
    config_violations,
    guard_violations,
    is_test_file,
    parse_patch,
    protected_violations,
    touched_paths,
)
from tests.conftest import git

BUILTIN = Path(__file__).resolve().parents[1] / "tasks" / "suites" / "builtin"


def patch_adding(lines: list[str], path: str = "pkg/core.py") -> str:
    """A one-hunk patch appending ``lines`` after two context lines of ``path``."""
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\n"
        f"index 1111111..2222222 100644\n"
        f"--- a/{path}\n"
        f"+++ b/{path}\n"
        f"@@ -10,2 +10,{2 + len(lines)} @@ def f():\n"
        f"     x = 1\n"
        f"     y = 2\n"
        f"{body}"
    )


RULE_CASES = [
    ("stack-introspection", "    caller = inspect.stack()[1]"),
    ("stack-introspection", "    frame = inspect.currentframe()"),
    ("stack-introspection", "    f = sys._getframe(2)"),
    ("stack-introspection", "    up = frame.f_back"),
    ("stack-introspection", "    names = frame.f_back.f_locals"),
    ("stack-introspection", "    tb = traceback.extract_stack()"),
    ("stack-introspection", "from inspect import stack as _s"),
    ("tracing-hook", "    sys.settrace(hook)"),
    ("tracing-hook", "    sys.setprofile(hook)"),
    ("tracing-hook", "    threading.settrace(hook)"),
    ("heap-walk", "    refs = gc.get_referrers(obj)"),
    ("heap-walk", "    everything = gc.get_objects()"),
    ("time-patching", "time.time = lambda: 0.0"),
    ("time-patching", "time.perf_counter = fake"),
    ("time-patching", "time.monotonic=fake"),
    ("time-patching", "timeit.default_timer = lambda: 0"),
    ("time-patching", "setattr(time, 'perf_counter', fake)"),
    ("time-patching", "with mock.patch('time.perf_counter', return_value=0):"),
    ("harness-detection", "if os.environ.get('PYTEST_CURRENT_TEST'):"),
    ("harness-detection", "if 'OPTIMIZER_SANDBOX' in os.environ:"),
    ("harness-detection", 'if "pytest" in sys.modules:'),
    ("harness-files", "open('.optimizer/junit.xml', 'w').write(fake)"),
    ("harness-files", 'Path(".optimizer") / "result.json"'),
    ("harness-files", "tree = ET.parse('junit.xml')"),
    ("harness-files", "    args.append('--junitxml=/dev/null')"),
    ("harness-files", "# rewrite the JUnit report"),
    ("harness-files", "OUT = '.optimizer-out'"),
    ("harness-files", "open('/work/.optimizer-out/result.json', 'w')"),
    ("harness-detection", "os.environ['PYTEST_ADDOPTS'] = '-k fast'"),
    ("pytest-internals", "import pytest"),
    ("pytest-internals", "    import os, pytest"),
    ("pytest-internals", "import numpy as np, pytest as pt"),
    ("pytest-internals", "from pytest import skip"),
    ("pytest-internals", "from _pytest.outcomes import Skipped"),
    ("pytest-internals", "import _pytest.runner"),
    ("pytest-internals", "import pluggy"),
    ("pytest-internals", "from pluggy import HookimplMarker"),
    ("pytest-internals", "    raise unittest.SkipTest('too slow')"),
    ("pytest-internals", "    raise SkipTest"),
    ("pytest-internals", "    pytest.skip('no')"),
    ("pytest-internals", "    pytest.xfail('flaky')"),
    ("pytest-internals", "    pytest.exit('done', returncode=0)"),
    ("pytest-internals", "def pytest_collection_modifyitems(items):"),
    ("pytest-internals", "pytest_plugins = ['pkg.plugin']"),
    ("exit-hooks", "import atexit"),
    ("exit-hooks", "import os, atexit"),
    ("exit-hooks", "atexit.register(write_report)"),
    ("exit-hooks", "from atexit import register"),
    ("exit-hooks", "    os._exit(0)"),
    ("exit-hooks", "from os import _exit"),
    ("exit-hooks", "sys.excepthook = lambda *a: None"),
    ("exit-hooks", "threading.excepthook = quiet"),
    ("exit-hooks", "setattr(sys, 'excepthook', quiet)"),
    ("dynamic-code", "exec(source)"),
    ("dynamic-code", "    return eval('1 + 1')"),
    ("dynamic-code", "code = compile(src, '<x>', 'exec')"),
    ("dynamic-code", "m = __import__(name)"),
    ("dynamic-code", "m = __import__('ins' + 'pect')"),
    ("dynamic-code", "m = importlib.import_module(name)"),
    ("dynamic-code", "m = import_module(mod_name)"),
    ("dynamic-code", "spec = importlib.util.spec_from_file_location('x', path)"),
    ("dynamic-code", "runpy.run_path(path)"),
    ("dynamic-code", "builtins.print = fake"),
    ("dynamic-code", "import builtins"),
    ("dynamic-code", "f = __builtins__['getattr']"),
    ("dynamic-code", "name = codecs.decode('_trgsenzr', 'rot13')"),
    ("dynamic-code", "name = base64.b64decode(b'X2dldGZyYW1l').decode()"),
    ("dynamic-code", "name = base64.urlsafe_b64decode(s)"),
    ("dynamic-code", "from base64 import b64decode"),
    ("dynamic-code", "import sys as s"),
    ("dynamic-code", "from inspect import *"),
    ("dynamic-code", "s = sys"),
    ("dynamic-code", "f = vars(sys)['_getframe']"),
    ("dynamic-code", "f = sys.__dict__['_getframe']"),
    ("dynamic-code", "m = sys.modules['inspect']"),
    ("dynamic-code", "for m in sys.modules.values():"),
    ("dynamic-code", r"f = getattr(s, '\x5fgetframe')"),
    ("dynamic-code", r"mod = '\u0073ys'"),
    ("dynamic-code", r"n = '\N{LOW LINE}getframe'"),
    ("dynamic-code", "hook = ctypes.pythonapi"),
    ("dynamic-code", "f = types.FunctionType(code, {})"),
    ("time-patching", "    t.perf_counter_ns = fake"),
    ("time-patching", "    setattr(clock_mod, 'perf_counter', fake)"),
    ("time-patching", "    main._clock = fake"),
    ("harness-reach", "import __main__"),
    ("harness-reach", "    g = __main__.__dict__"),
    ("harness-reach", "    kinds = object.__subclasses__()"),
    ("harness-reach", "    env = fn.__globals__"),
    ("harness-reach", "    code = fn.__code__"),
    ("harness-reach", "    os.getpriority(os.PRIO_PROCESS, 0)"),
    ("harness-reach", "    o.getsid(0)"),
]


@pytest.mark.parametrize(("rule", "line"), RULE_CASES)
def test_each_rule_is_caught_on_added_lines(rule: str, line: str) -> None:
    found = guard_violations(patch_adding(["def g():", line]))
    assert [(v.rule, v.file, v.line, v.text) for v in found] == [(rule, "pkg/core.py", 13, line)]


@pytest.mark.parametrize(
    "comment", ["  # guard: allow", "  # stackguard: allow", "  # noqa", "  # type: ignore"]
)
def test_an_allow_comment_does_not_exempt_a_line(comment: str) -> None:
    found = guard_violations(patch_adding([f"f = sys._getframe(1){comment}"]))
    assert len(found) == 1 and found[0].rule == "stack-introspection"


def test_removed_and_context_lines_are_ignored() -> None:
    patch = (
        "--- a/pkg/core.py\n"
        "+++ b/pkg/core.py\n"
        "@@ -1,4 +1,3 @@\n"
        " import sys\n"
        "-frame = sys._getframe(1)\n"
        " sys.settrace(None)\n"
        "+x = 1\n"
        "-gc.get_objects()\n"
    )
    assert guard_violations(patch) == []


def test_a_removed_line_that_looks_like_a_header_is_not_a_file() -> None:
    # "--- x" inside a hunk is a removed line "-- x"; the hunk counts say so.
    patch = (
        "--- a/notes.py\n"
        "+++ b/notes.py\n"
        "@@ -1,2 +1,2 @@\n"
        "--- old\n"
        "+++ new = sys._getframe()\n"
        " tail\n"
    )
    assert touched_paths(patch) == ["notes.py"]
    found = guard_violations(patch)
    assert [(v.file, v.line, v.rule) for v in found] == [("notes.py", 1, "stack-introspection")]


def test_line_numbers_follow_the_new_file_across_hunks() -> None:
    patch = (
        "diff --git a/m.py b/m.py\n"
        "--- a/m.py\n"
        "+++ b/m.py\n"
        "@@ -1,3 +1,3 @@\n"
        " a\n"
        "-b\n"
        "+b2\n"
        " c\n"
        "@@ -20,2 +20,3 @@\n"
        " d\n"
        "+sys.setprofile(p)\n"
        " e\n"
    )
    found = guard_violations(patch)
    assert [(v.line, v.rule) for v in found] == [(21, "tracing-hook")]


CLEAN = '''\
diff --git a/src/lib/sorting.py b/src/lib/sorting.py
index 3b18e51..a9c4d2f 100644
--- a/src/lib/sorting.py
+++ b/src/lib/sorting.py
@@ -1,12 +1,24 @@
 """Sorting helpers."""
+import bisect
+import functools
+import time
+
+from .optimizer import tune  # a sibling module named optimizer
~
~
 def merge(xs, ys):
-    return sorted(xs + ys)
+    stack = []  # a variable named stack is fine
+    start_time = time.time()
+    t0 = time.perf_counter()
+    if time.monotonic() - t0 > 1:
+        stack.append(start_time)
+    out = list(xs)
+    for y in ys:
+        bisect.insort(out, y)
+    return out
~
~
+@functools.lru_cache(maxsize=None)
 def key(x):
-    return x
+    frame_count = len(stack_frames) if (stack_frames := []) else 0
+    return x + frame_count + self.optimizer.step
'''.replace("~", " ")  # ~ marks blank context lines


def test_no_false_positives_on_a_clean_patch() -> None:
    assert " \n \n def merge" in CLEAN
    [diff] = parse_patch(CLEAN)
    assert len(diff.added) == 17 and diff.added[-1] == (
        24,
        "    return x + frame_count + self.optimizer.step",
    )
    assert guard_violations(CLEAN) == []
    assert touched_paths(CLEAN) == ["src/lib/sorting.py"]


def test_rules_for_python_only_skip_other_files_but_env_sniffing_does_not() -> None:
    doc = patch_adding(["Never call sys._getframe here."], path="docs/notes.md")
    assert guard_violations(doc) == []
    c_src = patch_adding(['if (getenv("PYTEST_CURRENT_TEST")) return 0;'], path="ext/fast.c")
    assert [v.rule for v in guard_violations(c_src)] == ["harness-detection"]


RENAME = """\
diff --git a/tests/test_old.py b/pkg/test_moved.py
similarity index 100%
rename from tests/test_old.py
rename to pkg/test_moved.py
"""

NEW_AND_DELETED = """\
diff --git a/pkg/sub/conftest.py b/pkg/sub/conftest.py
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/pkg/sub/conftest.py
@@ -0,0 +1 @@
+import pytest
diff --git a/bench/workload.py b/bench/workload.py
deleted file mode 100644
index e69de29..0000000
--- a/bench/workload.py
+++ /dev/null
@@ -1 +0,0 @@
-print(1)
diff --git a/data/blob.bin b/data/blob.bin
index 1111111..2222222 100644
Binary files a/data/blob.bin and b/data/blob.bin differ
"""


def test_touched_paths_handles_renames_new_deleted_and_binary() -> None:
    assert touched_paths(RENAME) == ["tests/test_old.py", "pkg/test_moved.py"]
    assert touched_paths(NEW_AND_DELETED) == [
        "pkg/sub/conftest.py",
        "bench/workload.py",
        "data/blob.bin",
    ]
    files = parse_patch(NEW_AND_DELETED)
    assert [(f.old_path, f.new_path, f.binary) for f in files] == [
        (None, "pkg/sub/conftest.py", False),
        ("bench/workload.py", None, False),
        ("data/blob.bin", "data/blob.bin", True),
    ]


def test_protected_paths_match_directories_exact_paths_and_conftest_anywhere() -> None:
    # Renaming a protected test out of tests/ is caught through its old path.
    assert protected_violations(RENAME, ["tests/"]) == ["tests/test_old.py"]
    assert protected_violations(RENAME, ["test/"]) == []  # a prefix is a whole directory
    assert protected_violations(NEW_AND_DELETED, ["conftest.py"]) == ["pkg/sub/conftest.py"]
    assert protected_violations(NEW_AND_DELETED, ["bench/workload.py"]) == ["bench/workload.py"]
    assert protected_violations(NEW_AND_DELETED, ["workload.py"]) == []  # exact, not basename
    assert protected_violations(NEW_AND_DELETED, [".optimizer/", "src/"]) == []


def test_on_a_real_git_diff_with_a_rename_and_a_binary(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n" * 5)
    (repo / "blob.bin").write_bytes(b"\x00\x01")
    (repo / "lib.py").write_text("def f():\n    return 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "mv", "tests/test_a.py", "tests/test_renamed.py")
    (repo / "blob.bin").write_bytes(b"\x00\x02\x03")
    (repo / "lib.py").write_text("import sys\n\ndef f():\n    return sys._getframe(1)\n")
    git(repo, "add", "-A")
    patch = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached", "-M"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert set(touched_paths(patch)) == {
        "blob.bin",
        "lib.py",
        "tests/test_a.py",
        "tests/test_renamed.py",
    }
    assert sorted(protected_violations(patch, ["tests/"])) == [
        "tests/test_a.py",
        "tests/test_renamed.py",
    ]
    found = guard_violations(patch)
    assert [(v.file, v.line, v.rule) for v in found] == [
        ("blob.bin", 0, "binary-file"),
        ("lib.py", 4, "stack-introspection"),
    ]
    assert str(found[1]) == "lib.py:4: stack-introspection: return sys._getframe(1)"


# --- no false positives, test files, binaries ----------------------------------------------------

BENIGN_LINES = [
    'if __name__ == "__main__":',
    "    self.time = started",
    "    self.clock = clock",
    "    job.timeout = 3",
    "pattern = re.compile(r'\\d+')",
    "fmt = compile_format(fmt)",
    "x = obj.compile(flags)",
    "    def eval(self, env):",
    "    def compile(self):",
    "model.eval()",
    "value = evaluate(expr)",
    "signal.signal(signal.SIGINT, handler)",
    "sys.exit(main())",
    "exit_code = run(at_exit=False)",
    "import time as _time",
    "import numpy as np",
    "from collections import defaultdict",
    "data = base64.b64encode(raw)",
    "text = raw.decode('utf-8')",
    "MAGIC = b'\\x00\\x7f\\xff\\n'",
    "this = sys.modules[__name__]",
    "print(x, file=sys.stderr)",
    "if limit == sys.maxsize:",
    "self.builtins_count = 0",
    "skip_test = should_skip(config)",
    "# run the tests with pytest -q",
    "optimizer.step()",
    "out = self.optimizer_output",
]


def test_no_false_positives_on_benign_lines() -> None:
    found = guard_violations(patch_adding(BENIGN_LINES))
    assert [str(v) for v in found] == []


@pytest.mark.parametrize(
    "path",
    ["tests/test_core.py", "pkg/test_fast.py", "pkg/fast_test.py", "conftest.py", "test/util.py"],
)
def test_test_files_may_use_pytest_but_not_the_other_rules(path: str) -> None:
    assert is_test_file(path)
    lines = ["import pytest", "from _pytest.outcomes import Skipped", "    pytest.skip('slow')"]
    assert guard_violations(patch_adding(lines, path=path)) == []
    found = guard_violations(patch_adding(["import atexit"], path=path))
    assert [v.rule for v in found] == ["exit-hooks"]


@pytest.mark.parametrize("path", ["pkg/testing.py", "pkg/tests_util.py", "contest.py"])
def test_library_files_may_not_use_pytest(path: str) -> None:
    assert not is_test_file(path)
    found = guard_violations(patch_adding(["import pytest"], path=path))
    assert [v.rule for v in found] == ["pytest-internals"]


def test_lines_end_at_line_feeds_only() -> None:
    # str.splitlines() would end the line at U+2028, \\x0c or \\x85 inside the string literal,
    # and the rest of it would look like a stray line, not an added one.
    for sep in ("\u2028", "\x0c", "\x85", "\x1e"):
        line = f"s = '{sep}'; f = sys._getframe(1)"
        found = guard_violations(patch_adding([line]))
        assert [(v.line, v.rule) for v in found] == [(12, "stack-introspection")], repr(sep)


def test_a_crlf_patch_is_read() -> None:
    patch = patch_adding(["x = 1", "f = sys._getframe(1)"]).replace("\n", "\r\n")
    found = guard_violations(patch)
    assert [(v.file, v.line, v.rule, v.text) for v in found] == [
        ("pkg/core.py", 13, "stack-introspection", "f = sys._getframe(1)")
    ]


GIT_BINARY = """\
diff --git a/pkg/_fast.so b/pkg/_fast.so
new file mode 100755
index 0000000..3b18e51
GIT binary patch
literal 12
Tcmb=f`v3p`e;Ghn3JL%Nz5)N~

literal 0
HcmV?d00001

"""


BINARIES = {
    "pkg/_fast.so": GIT_BINARY,
    "data/blob.bin": NEW_AND_DELETED,  # "Binary files a/... and b/... differ"
    **{
        path: patch_adding(["x"], path=path)
        for path in (
            "pkg/_fast.cpython-311-x86_64-linux-gnu.so",
            "pkg/_fast.pyd",
            "lib/libfast.dylib",
            "lib/libfast.so.1",
            "pkg/__pycache__/core.cpython-311.pyc",
            "pkg/core.pyo",
        )
    },
}


@pytest.mark.parametrize(("path", "patch"), BINARIES.items(), ids=BINARIES)
def test_binary_and_compiled_files_are_refused(path: str, patch: str) -> None:
    found = [v for v in guard_violations(patch) if v.rule == "binary-file"]
    assert [(v.file, v.line) for v in found] == [(path, 0)]


@pytest.mark.parametrize("path", ["pkg/solver.py", "docs/so.md", "notes.so.md", "pkg/pyc.txt"])
def test_text_files_with_binary_looking_names_are_not_binary(path: str) -> None:
    assert guard_violations(patch_adding(["x = 1"], path=path)) == []


# --- test configuration and import machinery ------------------------------------------------------


def new_file(path: str, lines: list[str]) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1111111\n"
        f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def deleted_file(path: str, lines: list[str]) -> str:
    body = "".join(f"-{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\ndeleted file mode 100644\nindex 1111111..0000000\n"
        f"--- a/{path}\n+++ /dev/null\n@@ -1,{len(lines)} +0,0 @@\n{body}"
    )


def renamed(old: str, new: str) -> str:
    return (
        f"diff --git a/{old} b/{new}\nsimilarity index 100%\nrename from {old}\nrename to {new}\n"
    )


def no_base(path: str) -> str | None:
    return None


CONFIG_CASES = [
    ("pkg/test_extra.py", "a test module: the tests are the task's, not the candidate's"),
    ("fast_test.py", "a test module: the tests are the task's, not the candidate's"),
    ("pytest.ini", "test configuration"),
    ("sub/pytest.ini", "test configuration"),
    (".pytest.ini", "test configuration"),
    ("pytest.toml", "test configuration"),
    ("tox.ini", "test configuration"),
    ("pkg/setup.cfg", "test configuration"),
    ("conftest.py", "pytest plugin (conftest.py)"),
    ("src/pkg/deep/conftest.py", "pytest plugin (conftest.py)"),
    ("sitecustomize.py", "runs at interpreter start"),
    ("lib/usercustomize.py", "runs at interpreter start"),
    ("fast.pth", "runs at interpreter start (.pth)"),
    ("venv/lib/site-packages/zz-hook.pth", "runs at interpreter start (.pth)"),
    ("pkg/__pycache__/core.cpython-311.opt-1.txt", "bytecode"),
    ("pkg/core.pyc", "bytecode"),
    ("pkg-1.0.dist-info/entry_points.txt", "package metadata (entry points load pytest plugins)"),
    ("src/pkg.egg-info/entry_points.txt", "package metadata (entry points load pytest plugins)"),
    (".pytest_cache/v/cache/lastfailed", "pytest cache"),
    ("pytest.py", "shadows the test runner's module pytest"),
    ("_pytest/__init__.py", "shadows the test runner's module _pytest"),
    ("pluggy.py", "shadows the test runner's module pluggy"),
    ("pytest_timeout.py", "shadows the test runner's module pytest_timeout"),
    ("xml/__init__.py", "shadows the standard library's module xml"),
    ("json.py", "shadows the standard library's module json"),
]


@pytest.mark.parametrize(("path", "reason"), CONFIG_CASES)
def test_config_paths_are_refused_when_added_changed_or_deleted(path: str, reason: str) -> None:
    want = [f"{path}: {reason}"]
    assert config_violations(new_file(path, ["x = 1"]), no_base) == want
    assert config_violations(patch_adding(["x = 1"], path=path), no_base) == want
    assert config_violations(deleted_file(path, ["x = 1"]), no_base) == want
    assert config_violations(renamed(path, "pkg/other.txt"), no_base) == want
    assert config_violations(renamed("pkg/other.txt", path), no_base) == want


@pytest.mark.parametrize(
    "path",
    [
        "pkg/core.py",
        "pkg/setup_helpers.py",
        "pkg/config.ini",
        "docs/conftest.md",
        "pkg/json.py",  # not top level: shadows nothing
        "xml/schema.py",  # no __init__.py: a namespace package, shadows nothing
        "pytest_results/notes.txt",
        "pkg/pytest.ini.md",
        "main.py",
        "setup.py",
    ],
)
def test_other_paths_are_not_config(path: str) -> None:
    assert config_violations(new_file(path, ["x = 1"]), no_base) == []
    assert config_violations(patch_adding(["x = 1"], path=path), no_base) == []


def test_config_violations_list_each_path_once_in_patch_order() -> None:
    patch = (
        new_file("pkg/core.py", ["x = 1"])
        + new_file("tox.ini", ["[pytest]"])
        + NEW_AND_DELETED
        + patch_adding(["y"], path="tox.ini")
    )
    assert config_violations(patch, no_base) == [
        "tox.ini: test configuration",
        "pkg/sub/conftest.py: pytest plugin (conftest.py)",
    ]


PYPROJECT = """\
[project]
name = "pkg"
version = "1.0"

[tool.ruff]
line-length = 100

[tool.pytest.ini_options]
testpaths = ["tests"]
timeout = 600
"""


def edit_patch(path: str, old: str | None, new: str) -> str:
    """A real ``git diff`` of ``path`` from ``old`` to ``new`` (``old`` None: a new file)."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        git(repo, "init", "-q", "-b", "main")
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if old is not None:
            target.write_bytes(old.encode())
            git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", "base")
        target.write_bytes(new.encode())
        git(repo, "add", "-A")
        done = subprocess.run(
            ["git", "-C", str(repo), "diff", "--cached"], capture_output=True, check=True
        )
        return done.stdout.decode()  # not text=True, which would turn "\r\n" into "\n"


def base_of(files: dict[str, str]):
    return files.get


INLINE = PYPROJECT.replace(
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\ntimeout = 600',
    '[tool.pytest]\nini_options = { testpaths = ["tests"], timeout = 600 }',
)
ALLOWED_PYPROJECTS = {
    "version": PYPROJECT.replace('version = "1.0"', 'version = "1.1"'),
    "other-tool": PYPROJECT.replace("line-length = 100", "line-length = 120"),
    "new-table": PYPROJECT + '\n[project.scripts]\npkg = "pkg.cli:main"\n',
    "new-key": PYPROJECT.replace('name = "pkg"', 'name = "pkg"\ndescription = "x"'),
    "same-table-reformatted": PYPROJECT.replace("timeout = 600", "timeout=600   # seconds"),
    "same-table-inline": INLINE,
}
REFUSED_PYPROJECTS = {
    "addopts-deselect": PYPROJECT + 'addopts = "--deselect tests/test_core.py::test_slow"\n',
    "addopts-k": PYPROJECT + 'addopts = "-k not slow"\n',
    "testpaths": PYPROJECT.replace('testpaths = ["tests"]', 'testpaths = ["tests/fast"]'),
    "table-removed": PYPROJECT.split("[tool.pytest")[0],
    "native-tool-pytest": PYPROJECT.replace(
        "[tool.ruff]", "[tool.pytest]\naddopts = ['-p', 'plug']\n[tool.ruff]"
    ),
    "inline-addopts": INLINE.replace("timeout = 600 }", "timeout = 600, addopts = '-x' }"),
    "dotted-key": PYPROJECT.replace("[tool.ruff]", "[tool]\npytest.markers = ['x']\n[tool.ruff]"),
    "not-toml": PYPROJECT.replace('version = "1.0"', 'version = "1.0'),
}


@pytest.mark.parametrize("new", ALLOWED_PYPROJECTS.values(), ids=ALLOWED_PYPROJECTS)
def test_a_pyproject_change_outside_tool_pytest_is_allowed(new: str) -> None:
    patch = edit_patch("pyproject.toml", PYPROJECT, new)
    assert config_violations(patch, base_of({"pyproject.toml": PYPROJECT})) == []


@pytest.mark.parametrize("new", REFUSED_PYPROJECTS.values(), ids=REFUSED_PYPROJECTS)
def test_a_pyproject_change_to_tool_pytest_is_refused(new: str) -> None:
    patch = edit_patch("pyproject.toml", PYPROJECT, new)
    assert config_violations(patch, base_of({"pyproject.toml": PYPROJECT})) == [
        "pyproject.toml: pytest configuration ([tool.pytest] in pyproject.toml)"
    ]


def test_new_deleted_and_renamed_pyprojects() -> None:
    plain = '[project]\nname = "sub"\n'
    base = base_of({"pyproject.toml": PYPROJECT, "conf/template.toml": PYPROJECT})
    # A new pyproject.toml counts as an empty base: allowed without a pytest table.
    assert config_violations(new_file("sub/pyproject.toml", plain.splitlines()), base) == []
    with_pytest = [*plain.splitlines(), "[tool.pytest.ini_options]", "addopts = '-x'"]
    assert config_violations(new_file("sub/pyproject.toml", with_pytest), base) == [
        "sub/pyproject.toml: pytest configuration ([tool.pytest] in pyproject.toml)"
    ]
    # Deleting or renaming away the one with the table changes the configuration.
    gone = "pyproject.toml: pytest configuration ([tool.pytest] in pyproject.toml)"
    assert config_violations(deleted_file("pyproject.toml", PYPROJECT.splitlines()), base) == [gone]
    assert config_violations(renamed("pyproject.toml", "old/pyproject.txt"), base) == [gone]
    # A file renamed onto pyproject.toml brings its own table.
    moved = renamed("conf/template.toml", "sub/pyproject.toml")
    assert config_violations(moved, base) == [
        "sub/pyproject.toml: pytest configuration ([tool.pytest] in pyproject.toml)"
    ]
    # A binary pyproject.toml cannot be read: refused.
    binary = GIT_BINARY.replace("pkg/_fast.so", "pyproject.toml")
    assert config_violations(binary, base) == [gone]


def test_pyproject_hunks_apply_like_git_with_offsets_and_in_sequence() -> None:
    base = base_of({"pyproject.toml": PYPROJECT})
    addopts = PYPROJECT + 'addopts = "-k fast"\n'
    patch = edit_patch("pyproject.toml", PYPROJECT, addopts)
    # The hunk's line numbers are off by 5: git apply finds it anyway, and so do we.
    shifted = patch.replace("@@ -8,3 +8,4 @@", "@@ -13,3 +13,4 @@")
    assert shifted != patch
    assert config_violations(shifted, base) != []
    # Two diffs of one file add up: the second's context exists only after the first.
    first = edit_patch("pyproject.toml", PYPROJECT, PYPROJECT + "# note\n")
    second = edit_patch("pyproject.toml", PYPROJECT + "# note\n", addopts + "# note\n")
    assert config_violations(first, base) == []
    assert config_violations(first + second, base) != []
    # A hunk that matches nowhere cannot be rebuilt: refused (git apply would fail anyway).
    wrong = patch.replace(" timeout = 600", " timeout = 601")
    assert config_violations(wrong, base) != []


EDITS = {
    "one-line": PYPROJECT.replace("timeout = 600", "timeout = 60"),
    "head-and-tail": "# head\n" + PYPROJECT + "# tail\n",
    "two-hunks": PYPROJECT.replace("[tool.ruff]\n", "").replace('name = "pkg"\n', ""),
    "no-final-newline": PYPROJECT.rstrip("\n"),
    "emptied": "",
    "crlf": PYPROJECT.replace("\n", "\r\n"),
}


@pytest.mark.parametrize("new", EDITS.values(), ids=EDITS)
def test_apply_hunks_rebuilds_what_git_wrote(new: str) -> None:
    patch = edit_patch("pyproject.toml", PYPROJECT, new)
    [f] = parse_patch(patch)
    got = apply_hunks(PYPROJECT, f.body)
    assert got is not None and got.rstrip("\n") == new.rstrip("\n")


EXPERTS = [
    "spans",
    "logparse",
    "sigproc",
    "recpack",
    "pair-sum-count",
    "prime-sums",
    "lis-length",
    "top-words",
    "range-sums",
]


@pytest.mark.parametrize("task", EXPERTS)
def test_expert_patches_pass_every_check(task: str) -> None:
    repo = BUILTIN / task / "repo"
    patch = (BUILTIN / task / "expert.patch").read_text()

    def base_text(path: str) -> str | None:
        f = repo / path
        return f.read_text() if f.is_file() else None

    assert guard_violations(patch) == []
    assert config_violations(patch, base_text) == []
    for f in parse_patch(patch):  # the hunks rebuild the file the expert wrote
        assert f.old_path is not None and apply_hunks(base_text(f.old_path) or "", f.body)
