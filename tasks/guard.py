"""Checks on a candidate's unified diff, before anything of it runs.

* :func:`protected_violations`: the patch touches a file the task declares protected (tests,
  the workload, ``conftest.py``, ``.optimizer/``), so it is rejected.
* :func:`config_violations`: the patch touches a file that changes what the tests run or what
  the interpreter loads before any test: pytest configuration (``pytest.ini``, ``tox.ini``,
  ``setup.cfg``, ``pytest.toml``, the ``[tool.pytest]`` table of a ``pyproject.toml``), a
  ``conftest.py``, ``sitecustomize.py`` or ``usercustomize.py`` in any folder, a ``*.pth``
  file, bytecode (``__pycache__/``, ``*.pyc``), installed-package metadata (``*.dist-info/``,
  ``*.egg-info/``, whose entry points autoload pytest plugins), ``.pytest_cache/``, or a
  top-level module that would replace pytest's or the standard library's (the tests run in
  the repository root, first on ``sys.path``). A ``pyproject.toml`` change outside
  ``[tool.pytest]`` is allowed: its patched text is rebuilt from the base text and the hunks,
  as ``git apply`` would, and the two ``tool.pytest`` tables compared.
* :func:`guard_violations`: the static guard. A binary or compiled file is refused outright
  (``binary-file``), and added lines must not look at the caller's stack, install tracing
  hooks, walk the heap, patch the clock, sniff out the test harness, reach into pytest from
  library code, install exit hooks, run or import code built at run time (``exec``,
  ``__import__``, ``importlib``, ``builtins``, decoded or escaped names: the usual ways to
  hide a forbidden name from a regex) or name the harness's files. Comments do not exempt a
  line: there is no ``# guard: allow`` (the loophole SWE-fficiency's ``# stackguard: allow``
  left open), and a rule matches inside a comment too, since telling a comment from a string
  needs the whole file.

All are pure functions of the diff text (:func:`config_violations` also reads base texts
through the callable it is given). The patch is split into lines at line feeds only, as git
does: ``str.splitlines`` also splits at form feeds, ``U+2028`` and other separators, which
Python source may hold inside a string, and so would hide the rest of that line.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

#: Files the Python rules apply to; the other rules apply to every text file.
_PY_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd", ".pxi", ".pth")


@dataclass
class Hunk:
    """One hunk: where it starts in the old and new file, and its lines, each with its tag
    (``" "``, ``"-"``, ``"+"``, or ``"\\"`` for "No newline at end of file")."""

    old_start: int
    new_start: int
    lines: list[str] = field(default_factory=list)


@dataclass
class FileDiff:
    """One file of a patch: its old and new paths (None for /dev/null), the added lines (with
    their line numbers in the new file) and the hunks."""

    old_path: str | None = None
    new_path: str | None = None
    binary: bool = False
    added: list[tuple[int, str]] = field(default_factory=list)
    hunks: int = 0
    body: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    def paths(self) -> list[str]:
        return [p for p in dict.fromkeys([self.old_path, self.new_path]) if p]


@dataclass(frozen=True)
class Violation:
    """A guard hit: the file, the line number in the new file, the rule and the line text."""

    file: str
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.text.strip()}"


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADER = re.compile(r'^diff --git ("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)\s*$')
_BINARY = re.compile(r"^Binary files (.+?) and (.+?) differ$")


def _unquote(raw: str) -> str:
    """A path as git prints it: maybe C-quoted, with an ``a/``/``b/`` prefix."""
    raw = raw.strip()
    if "\t" in raw and not raw.startswith('"'):
        raw = raw.split("\t", 1)[0]  # plain diff: "path<TAB>timestamp"
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        body = raw[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        try:
            raw = body.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raw = body
    return raw


def _strip_prefix(path: str) -> str | None:
    path = _unquote(path)
    if path == "/dev/null":
        return None
    if path[:2] in ("a/", "b/"):
        path = path[2:]
    return path.removeprefix("./")


def parse_patch(patch: str) -> list[FileDiff]:
    """Split a unified (or git) diff into files, tracking new-file line numbers of additions."""
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    hunk: Hunk | None = None
    old_left = new_left = 0
    new_line = 0
    # Lines end at "\n" only, as for git (see the module docstring); a CRLF patch keeps its
    # "\r" in hunk lines, which is what git matches against the file.
    lines = patch.split("\n")
    if lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if cur is not None and hunk is not None and (old_left > 0 or new_left > 0):
            # Inside a hunk: the counts say where it ends, so "--- x" here is a removed line.
            tag = raw[:1]
            if tag == "\\":
                hunk.lines.append("\\")  # "\ No newline at end of file"
                continue
            if tag == "+":
                cur.added.append((new_line, raw[1:].removesuffix("\r")))
                hunk.lines.append(raw)
                new_line += 1
                new_left -= 1
                continue
            if tag == "-":
                hunk.lines.append(raw)
                old_left -= 1
                continue
            if tag == " " or raw in ("", "\r"):
                hunk.lines.append(raw if tag == " " else " " + raw)
                old_left -= 1
                new_left -= 1
                new_line += 1
                continue
            old_left = new_left = 0  # a malformed hunk: fall through to header parsing
        line = raw.removesuffix("\r")
        if m := _GIT_HEADER.match(line):
            cur = FileDiff(_strip_prefix(m.group(1)), _strip_prefix(m.group(2)))
            files.append(cur)
            continue
        if line.startswith("diff --git "):
            cur = FileDiff()
            files.append(cur)
            continue
        if line.startswith("--- ") and i < len(lines) and lines[i].startswith("+++ "):
            old = _strip_prefix(line[4:])
            new = _strip_prefix(lines[i][4:])
            i += 1
            if cur is None or cur.hunks:  # a plain diff (no "diff --git"): a new file
                cur = FileDiff()
                files.append(cur)
            cur.old_path, cur.new_path = old, new
            continue
        if cur is None:
            continue
        if m := _HUNK.match(line):
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
            new_line = int(m.group(3))
            hunk = Hunk(int(m.group(1)), new_line)
            cur.body.append(hunk)
            cur.hunks += 1
            continue
        if line.startswith(("rename from ", "copy from ")):
            cur.old_path = _strip_prefix(line.split(" from ", 1)[1])
        elif line.startswith(("rename to ", "copy to ")):
            cur.new_path = _strip_prefix(line.split(" to ", 1)[1])
        elif line.startswith("new file mode"):
            cur.old_path = None
        elif line.startswith("deleted file mode"):
            cur.new_path = None
        elif line.startswith("GIT binary patch"):
            cur.binary = True
        elif m := _BINARY.match(line):
            cur.binary = True
            cur.old_path = _strip_prefix(m.group(1))
            cur.new_path = _strip_prefix(m.group(2))
    return files


def touched_paths(patch: str) -> list[str]:
    """Every path the patch reads or writes: both sides of a rename, new and deleted files."""
    seen: dict[str, None] = {}
    for f in parse_patch(patch):
        for p in f.paths():
            seen[p] = None
    return list(seen)


def _matches(path: str, entry: str) -> bool:
    entry = entry.strip().removeprefix("./")
    if not entry:
        return False
    if entry.endswith("/"):
        return path.startswith(entry) or path == entry.rstrip("/")
    if path == entry:
        return True
    return "/" not in entry and entry == "conftest.py" and path.rsplit("/", 1)[-1] == entry


def is_protected(path: str, protected: list[str]) -> bool:
    """A ``dir/`` entry is a prefix, other entries are exact paths, and ``conftest.py``
    matches a conftest.py in any directory."""
    return any(_matches(path, e) for e in protected)


def protected_violations(patch: str, protected: list[str]) -> list[str]:
    """The paths the patch touches that are protected (see :func:`is_protected`)."""
    return [p for p in touched_paths(patch) if is_protected(p, protected)]


# --- test configuration and import machinery ---------------------------------------------------

#: File names (any folder, any case) that change what the tests run or what Python loads first.
_CONFIG_NAMES = {
    "pytest.ini": "test configuration",
    ".pytest.ini": "test configuration",
    "pytest.toml": "test configuration",
    ".pytest.toml": "test configuration",
    "tox.ini": "test configuration",
    "setup.cfg": "test configuration",
    "conftest.py": "pytest plugin (conftest.py)",
    "sitecustomize.py": "runs at interpreter start",
    "usercustomize.py": "runs at interpreter start",
}
#: File-name endings (any case).
_CONFIG_SUFFIXES = {
    ".pth": "runs at interpreter start (.pth)",
    ".egg-link": "import machinery (.egg-link)",
    ".pyc": "bytecode",
    ".pyo": "bytecode",
}
#: Folder names (a path anywhere under one matches), exact or by ending.
_CONFIG_DIRS = {"__pycache__": "bytecode", ".pytest_cache": "pytest cache"}
_CONFIG_DIR_SUFFIXES = {
    ".dist-info": "package metadata (entry points load pytest plugins)",
    ".egg-info": "package metadata (entry points load pytest plugins)",
}


#: Modules that the test run imports. The tests run in the repository root, which is first on
#: sys.path, so a top-level module or package by one of these names replaces the real one (a
#: folder without ``__init__.py`` is a namespace package and replaces nothing).
_RUNNER_MODULES = frozenset(
    {"pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging"}
    | {"optimizer_results", "optimizer_unittest"}  # the grader's own (tasks/testrun.py)
)
_MODULE_FILE = re.compile(r"^([\w-]+)(\.[\w-]+)*\.(py|pyw|pyi|so|pyd)$")


def _shadowed(parts: list[str]) -> str | None:
    """The module a top-level module file or package ``__init__`` would replace, or None."""
    if len(parts) == 1 and (m := _MODULE_FILE.match(parts[0])):
        name = m.group(1)
    elif len(parts) == 2 and _MODULE_FILE.match(parts[1]) and parts[1].startswith("__init__."):
        name = parts[0]
    else:
        return None
    if name in _RUNNER_MODULES or name.startswith(("pytest_", "_pytest")):
        return f"shadows the test runner's module {name}"
    if name in sys.stdlib_module_names:
        return f"shadows the standard library's module {name}"
    return None


def config_reason(path: str) -> str | None:
    """Why touching ``path`` changes the tests or the import machinery, or None. A
    ``pyproject.toml`` is judged on its content instead (see :func:`config_violations`)."""
    if (reason := _shadowed(path.split("/"))) is not None:
        return reason
    parts = path.lower().split("/")
    name = parts[-1]
    if name in _CONFIG_NAMES:
        return _CONFIG_NAMES[name]
    if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
        # a test module pytest collects can declare plugins or patch the code for the tests
        return "a test module: the tests are the task's, not the candidate's"
    for suffix, reason in _CONFIG_SUFFIXES.items():
        if name.endswith(suffix):
            return reason
    for folder in parts[:-1]:
        if folder in _CONFIG_DIRS:
            return _CONFIG_DIRS[folder]
        for suffix, reason in _CONFIG_DIR_SUFFIXES.items():
            if folder.endswith(suffix):
                return reason
    return None


def _is_pyproject(path: str | None) -> bool:
    return path is not None and path.rsplit("/", 1)[-1].lower() == "pyproject.toml"


def _find_hunk(lines: list[str], pre: list[str], guess: int, begin: bool, end: bool) -> int | None:
    """Where ``pre`` sits in ``lines``: at ``guess`` or the nearest offset (``guess``, +1, -1,
    +2, ...), as ``git apply`` searches; ``begin``/``end`` pin it to the start/end."""
    top = len(lines) - len(pre)
    for d in range(max(guess, top, 0) + 1):
        for pos in (guess + d, guess - d) if d else (guess,):
            if not 0 <= pos <= top or (begin and pos) or (end and pos != top):
                continue
            if not pre or (lines[pos] == pre[0] and lines[pos : pos + len(pre)] == pre):
                return pos
    return None


def apply_hunks(text: str, hunks: list[Hunk]) -> str | None:
    """``text`` with ``hunks`` applied as ``git apply`` applies them (exact context, the
    nearest offset), or None where one does not apply. A missing final newline is ignored."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for h in hunks:
        body = [ln for ln in h.lines if ln[:1] in (" ", "-", "+")]
        pre = [ln[1:] for ln in body if ln[0] != "+"]
        post = [ln[1:] for ln in body if ln[0] != "-"]
        trailing = 0
        for ln in reversed(body):
            if ln[0] != " ":
                break
            trailing += 1
        pos = _find_hunk(lines, pre, max(h.new_start - 1, 0), h.old_start <= 1, trailing == 0)
        if pos is None:
            return None
        lines[pos : pos + len(pre)] = post
    return "".join(ln + "\n" for ln in lines)


_UNREADABLE = object()  # a pyproject.toml that is not TOML, or a change that cannot be rebuilt


def _pytest_table(text: str | None) -> object:
    """The ``tool.pytest`` table of a pyproject text (None when absent), or _UNREADABLE."""
    if text is None:
        return _UNREADABLE
    try:
        data = tomllib.loads(text)
    except (ValueError, RecursionError):  # tomllib.TOMLDecodeError is a ValueError
        return _UNREADABLE
    tool = data.get("tool")
    return tool.get("pytest") if isinstance(tool, dict) else None


def _pyproject_changes(files: list[FileDiff], base_text: Callable[[str], str | None]) -> list[str]:
    """The pyproject.toml paths whose ``[tool.pytest]`` table the patch changes. The files are
    patched in order, as ``git apply`` does, so two diffs of one file add up."""
    after: dict[str, str | None] = {}  # path -> its text so far ("" once gone; None: unknown)

    def current(path: str) -> str | None:
        return after[path] if path in after else (base_text(path) or "")

    for f in files:
        if not (_is_pyproject(f.old_path) or _is_pyproject(f.new_path)):
            continue
        if f.binary:
            text: str | None = None
        else:
            src = current(f.old_path) if f.old_path else ""
            text = None if src is None else apply_hunks(src, f.body)
        if f.old_path and f.old_path != f.new_path:
            after[f.old_path] = ""  # renamed or deleted (a copy counts as moved: stricter)
        if f.new_path:
            after[f.new_path] = text
    changed = []
    for path, text in after.items():
        if not _is_pyproject(path):
            continue
        old, new = _pytest_table(base_text(path) or ""), _pytest_table(text)
        if old is _UNREADABLE or new is _UNREADABLE or old != new:
            changed.append(path)
    return changed


def config_violations(patch: str, base_text: Callable[[str], str | None]) -> list[str]:
    """The paths the patch adds, modifies, deletes or renames that change the tests or the
    import machinery, each as ``"path: reason"``, in patch order. ``base_text(path)`` is the
    base's text of ``path`` (None where the base has no such file); it is read only for
    pyproject.toml files (and a file renamed to one), whose ``[tool.pytest]`` table must stay
    as it is."""
    files = parse_patch(patch)
    out: dict[str, None] = {}
    for f in files:
        for path in f.paths():
            if (reason := config_reason(path)) is not None:
                out[f"{path}: {reason}"] = None
    for path in _pyproject_changes(files, base_text):
        out[f"{path}: pytest configuration ([tool.pytest] in pyproject.toml)"] = None
    return list(out)


# --- the static guard -------------------------------------------------------------------------

_NOT_ATTR = r"(?<![\w.])"  # the name is not itself an attribute or part of a longer name

# Which added lines a rule reads: every text file, Python files, or Python files but tests.
_ANY, _PY, _LIB = "any", "python", "library"

# Names that must not follow "." or a letter share one ``_NOT_ATTR`` ahead of their alternation,
# so that ``re`` tests each alternative's first letter only: a lookbehind per alternative made
# the guard several times slower (benchmarks/ci/guard_scan.py).
_RULES: list[tuple[str, str, re.Pattern[str]]] = [
    (
        "stack-introspection",
        _PY,
        re.compile(
            rf"{_NOT_ATTR}(inspect\s*\.\s*(stack|currentframe|getouterframes|getinnerframes|"
            r"trace|getframeinfo)\b"
            r"|sys\s*\.\s*(_getframe|_current_frames)\b"
            r"|traceback\s*\.\s*(extract_stack|format_stack|print_stack|walk_stack)\b)"
            r"|\.\s*f_(back|locals|globals)\b"
            r"|from\s+(inspect|sys|traceback)\s+import\s+[^#]*\b(stack|currentframe|"
            r"getouterframes|_getframe|_current_frames|extract_stack|walk_stack)\b"
        ),
    ),
    (
        "tracing-hook",
        _PY,
        re.compile(
            rf"{_NOT_ATTR}((sys|threading)\s*\.\s*(settrace|setprofile|settrace_all_threads|"
            r"setprofile_all_threads)\b"
            r"|sys\s*\.\s*monitoring\b)"
            r"|from\s+(sys|threading)\s+import\s+[^#]*\b(settrace|setprofile|monitoring)\b"
        ),
    ),
    (
        "tracing-hook",
        _ANY,
        re.compile(r"PyEval_(Set(Trace|Profile)\w*\s*\(|GetFrame\b)"),
    ),
    (
        "heap-walk",
        _PY,
        re.compile(
            rf"{_NOT_ATTR}gc\s*\.\s*(get_referrers|get_referents|get_objects)\b"
            r"|from\s+gc\s+import\s+[^#]*\b(get_referrers|get_referents|get_objects)\b"
        ),
    ),
    (
        "time-patching",
        _PY,
        re.compile(
            rf"{_NOT_ATTR}(time|timeit)\s*\.\s*(time|time_ns|perf_counter|perf_counter_ns|"
            r"monotonic|monotonic_ns|process_time|process_time_ns|thread_time|default_timer)"
            r"\s*=(?!=)"
            r"|\b(setattr\s*\(\s*['\"]?(time|timeit)\b"
            r"|patch\s*\(\s*['\"](time|timeit)\s*\."
            r"|patch\s*\.\s*object\s*\(\s*(time|timeit)\s*,"
            r"|delattr\s*\(\s*(time|timeit)\s*,)"
            # the clock under another name: `import time as t; t.perf_counter_ns = ...`
            r"|\.\s*(perf_counter|perf_counter_ns|monotonic|monotonic_ns|process_time|"
            r"process_time_ns|default_timer|_clock)\s*=(?!=)"
            r"|\bsetattr\s*\([^,]*,\s*['\"](perf_counter|perf_counter_ns|monotonic|"
            r"monotonic_ns|process_time|process_time_ns|default_timer|_clock)['\"]"
        ),
    ),
    (
        "harness-reach",
        _PY,
        re.compile(
            # the harness runs as __main__; its globals and other functions' internals are
            # reached through these, whatever names the rest of the line uses
            r"\bimport\s+__main__\b|(?<![\w.])__main__\s*\.|['\"]__main__['\"]\s*\]"
            r"|\.\s*__(subclasses|globals|code|closure|defaults|kwdefaults)__\b"
            # the syscalls that mark the instruction-count region
            r"|\b(getpriority|setpriority|getsid)\s*\("
        ),
    ),
    (
        "dynamic-lookup",
        _PY,
        re.compile(
            rf"{_NOT_ATTR}getattr\s*\(\s*(sys|inspect|gc|threading|traceback)\s*,"
            r"|__import__\s*\(\s*['\"](inspect|gc|traceback)['\"]"
            r"|import_module\s*\(\s*['\"](inspect|gc|traceback)['\"]"
        ),
    ),
    (
        "harness-detection",
        _ANY,
        re.compile(
            r"PYTEST_[A-Z]|OPTIMIZER_SANDBOX"
            r"|['\"]_?pytest['\"]\s+(not\s+)?in\s+sys\s*\.\s*modules"
            r"|sys\s*\.\s*modules\s*(\.\s*get\s*\(|\[)\s*['\"]_?pytest['\"]"
        ),
    ),
    (
        "harness-files",
        _ANY,
        re.compile(
            r"""['"]\.optimizer\b|(?<![\w)\].])\.optimizer[/\\]"""
            r"""|\.optimizer-out\b|['"]optimizer-out\b"""
            r"|[jJ][uU][nN][iI][tT]"  # the harness reads the test results from JUnit XML
        ),
    ),
    (
        "pytest-internals",
        _LIB,
        re.compile(
            rf"{_NOT_ATTR}(import\s+([\w.]+(\s+as\s+\w+)?\s*,\s*)*(_?pytest|pluggy)(?!\w)"
            r"|from\s+(_?pytest|pluggy)(?!\w)"
            r"|_?pytest\s*\.\s*(skip|xfail|exit|fail|importorskip|main)\b)"
            r"|SkipTest\b|def\s+pytest_\w+\s*\(|pytest_plugins\s*="
        ),
    ),
    (
        "exit-hooks",
        _PY,
        re.compile(
            rf"{_NOT_ATTR}(atexit\b"
            r"|(os|posix|nt)\s*\.\s*_exit\b"
            r"|(sys|threading)\s*\.\s*(excepthook|unraisablehook)\s*=(?!=))"
            r"|from\s+(os|posix|nt)\s+import\s+[^#]*\b_exit\b"
            r"""|setattr\s*\(\s*(sys|threading)\s*,\s*['"](excepthook|unraisablehook)"""
        ),
    ),
    (
        "dynamic-code",
        _PY,
        re.compile(
            # code built at run time (a method named eval or compile is fine)
            rf"{_NOT_ATTR}(?<!def )((exec|eval|compile)\s*\("
            # a module loaded by a name or path made at run time
            r"|runpy\b"
            # the builtins module, through which any builtin is reached by name
            r"|builtins\s*\.|(import|from)\s+builtins\b"
            # a module under another name, which the rules above do not know
            r"|import\s+(sys|inspect|gc|traceback|builtins)\s+as\b"
            r"|vars\s*\(\s*(sys|inspect|gc|traceback|threading|time|timeit)\s*\)"
            r"|(sys|inspect|gc|traceback|threading|time|timeit)\s*\.\s*__dict__\b"
            r"|sys\s*\.\s*modules\b(?!\s*\[\s*__name__\s*\])"
            # a name decoded at run time
            r"|codecs\s*\.\s*(decode|getdecoder|lookup)\b"
            r"|base64\s*\.\s*\w*decode\w*\s*\()"
            r"|(FunctionType|CodeType)\s*\(|pythonapi\b"
            r"|__import__\b|import_module\b|__builtins__\b"
            r"|spec_from_file_location|module_from_spec|SourceFileLoader"
            r"|from\s+(sys|inspect|gc|traceback|builtins)\s+import\s+[^#]*\*"
            r"|from\s+sys\s+import\s+[^#]*\bmodules\b"
            r"|from\s+codecs\s+import\s+[^#]*\b(decode|getdecoder|lookup)\b"
            r"|from\s+base64\s+import\s+[^#]*decode"
            r"|[^=!<>]=\s*(sys|inspect|gc|traceback)\s*($|[;#,)])"
            r"""|['"]rot[_-]?13['"]"""
            # a letter, "." or "_" written as an escape: "\x5fgetframe", "\u0073ys", "\N{...}"
            r"|\\(x|u00|U000000)(2[eE]|5[fF]|[46][1-9a-fA-F]|[57][0-9aA])"
            r"|\\N\{|\\(056|137|1[0-7][0-7])"
        ),
    ),
]

#: Compiled code and binaries cannot be read by the rules, so they are refused outright.
_BINARY_SUFFIX = re.compile(r"\.(so(\.[\d.]+)?|pyd|dylib|dll|pyc|pyo)$", re.IGNORECASE)


def is_test_file(path: str) -> bool:
    """``test_*.py``, ``*_test.py``, ``conftest.py``, or anything under a ``tests/`` or
    ``test/`` folder: files where pytest's own names are expected."""
    *folders, name = path.split("/")
    return (
        (name.startswith("test_") and name.endswith(".py"))
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(d in ("tests", "test") for d in folders)
    )


def guard_violations(patch: str) -> list[Violation]:
    """Binary files (line 0) and added lines that break a guard rule, in patch order. Removed
    and context lines are ignored; no comment exempts a line."""
    out: list[Violation] = []
    for f in parse_patch(patch):
        if f.binary or _BINARY_SUFFIX.search(f.new_path or ""):
            out.append(Violation(f.path, 0, "binary-file", "a binary or compiled file"))
        if f.new_path is None:
            continue
        scopes = {_ANY}
        if f.new_path.endswith(_PY_SUFFIXES):
            scopes.add(_PY)
            if not is_test_file(f.new_path):
                scopes.add(_LIB)
        for lineno, text in f.added:
            for rule, scope, pattern in _RULES:
                if scope in scopes and pattern.search(text):
                    out.append(Violation(f.new_path, lineno, rule, text))
                    break
    return out
