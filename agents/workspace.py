"""The agent's Environment: a private git clone it reads and edits, and a sandbox for runs.

The agent never touches the user's tree: it works on its own clone of ``source.rev`` (plus
``source.patch``) in a temp directory. Host-side git only reads and writes files there (no
hooks, no system or global config, so no filter or diff drivers), and everything the agent
*runs* (tests, timings, profiles) runs in a fresh sandbox copy of ``base + diff()``, never on
the host and never in the clone. Tool mistakes raise :class:`ToolError` with a message the
model can act on; failures of the code under test come back as ordinary observations.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from agents.protocols import Submitted, ToolCall, ToolError
from profilers import ProfileError, Workload, install, measure_wall, profile_hotspots
from profilers.models import HotspotReport
from sandbox import Backend, Limits, Sandbox, Source, UserError, open_sandbox
from sandbox.errors import PatchError, SandboxError
from sandbox.source import resolve

#: Where the test command writes JUnit XML in the sandbox (``{junit}``), as the judge does.
JUNIT_PATH = ".optimizer/junit.xml"
#: Directories the agent may never write: git's own, and the harness's.
_RESERVED = (".git", ".optimizer")
_MAX_LIST = 400
_MAX_READ_LINES = 400
_MAX_MATCHES = 150
_MAX_SEARCH_BYTES = 2 * 1024 * 1024
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
_GIT_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.attributesFile=/dev/null"]


def cut(text: str, limit: int) -> tuple[str, int]:
    """Keep the head and tail of ``text`` within ``limit`` characters; return it and how many
    characters were elided (0 when it fit)."""
    if len(text) <= limit:
        return text, 0
    widest = len(f"\n... [{len(text)} characters elided] ...\n")
    keep = max(0, limit - widest)
    head = keep // 2
    tail = keep - head
    elided = len(text) - keep
    marker = f"\n... [{elided} characters elided] ...\n"
    return text[:head] + marker + text[len(text) - tail :], elided


def truncate(text: str, limit: int) -> str:
    """``text`` cut to its head and tail, with the elided count shown between them."""
    return cut(text, limit)[0]


def _tool(name: str, description: str, **params: tuple[str, str, bool]) -> dict[str, Any]:
    """An OpenAI function schema; each param is (JSON type, description, required)."""
    props = {k: {"type": t, "description": d} for k, (t, d, _) in params.items()}
    required = [k for k, (_, _, req) in params.items() if req]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


TOOLS = [
    _tool(
        "list_files",
        "List the files under a directory of the repository.",
        path=("string", "Directory relative to the repository root (default '.').", False),
    ),
    _tool(
        "read_file",
        f"Read a file with line numbers (at most {_MAX_READ_LINES} lines per call).",
        path=("string", "File path relative to the repository root.", True),
        start_line=("integer", "First line to show, from 1 (default 1).", False),
        end_line=("integer", "Last line to show (default: the end).", False),
    ),
    _tool(
        "search",
        "Search the text files under a path for a Python regular expression.",
        pattern=("string", "A Python regular expression, matched per line.", True),
        path=("string", "File or directory to search (default '.').", False),
    ),
    _tool(
        "edit",
        "Replace one exact occurrence of `search` in a file by `replace`. `search` must match "
        "the file exactly once, whitespace included (copy it from read_file, without the line "
        "numbers).",
        path=("string", "File path relative to the repository root.", True),
        search=("string", "The exact text to replace; unique in the file.", True),
        replace=("string", "The new text.", True),
    ),
    _tool(
        "create_file",
        "Create a new file (it must not exist yet).",
        path=("string", "File path relative to the repository root.", True),
        content=("string", "The whole content of the file.", True),
    ),
    _tool("run_tests", "Run the project's tests on the current code, in the sandbox."),
    _tool(
        "time_workload",
        "Time the benchmark workload on the current code and on the base (a rough number).",
        repeats=("integer", "Fresh processes to time (default 3, at most 10).", False),
    ),
    _tool("profile", "Profile the workload on the current code: the top functions by time."),
    _tool(
        "submit",
        "Submit the current code as your candidate and stop.",
        summary=("string", "What you changed and why it is faster.", False),
    ),
]


#: A kernel task's tools: no tests or workload to run; the judge's correctness check instead.
KERNEL_TOOLS = [
    t for t in TOOLS if t["function"]["name"] not in ("run_tests", "time_workload", "profile")
]
KERNEL_TOOLS.insert(
    -1,
    _tool(
        "check_kernel",
        "Run the judge's correctness check on the current kernel: the static checks, then "
        "ModelNew against the reference on several shapes and input distributions (fresh "
        "random inputs each time). Says what is wrong, or that it is correct.",
    ),
)


def is_protected(path: str, protected: Sequence[str]) -> bool:
    """A ``dir/`` entry protects everything under it, other entries exact paths, and a
    ``conftest.py`` entry any conftest.py (the judge's rule, so refusals match rejections)."""
    for raw in protected:
        entry = raw.strip().removeprefix("./")
        if not entry:
            continue
        if entry.endswith("/"):
            if path.startswith(entry) or path == entry.rstrip("/"):
                return True
        elif path == entry or (entry == "conftest.py" and path.rsplit("/", 1)[-1] == entry):
            return True
    return False


class Workspace:
    """A private clone the agent edits through tools, and sandboxes for what it runs."""

    def __init__(
        self,
        source: Source,
        *,
        tests_command: str | None,
        workload: Workload,
        env: dict[str, str] | None = None,
        protected: Sequence[str] = (),
        backend: Backend = "auto",
        image: str | None = None,
        limits: Limits | None = None,
        observation_chars: int = 6000,
        workload_file: bytes | None = None,
        install: Sequence[str] = (),
        tests_env: dict[str, str] | None = None,
        files: dict[str, bytes] | None = None,
        checker: Callable[[str], str] | None = None,
    ) -> None:
        """``workload_file`` holds the workload's source when it lives outside the repository
        (it is then copied into each sandbox, as ``profilers.install`` does); ``install`` are
        the task's commands run in each sandbox after the patch applies (the judge runs them
        too), such as installing the package under test; ``files`` go into each sandbox
        before them (the test runner's harness files), and ``tests_env`` is what the test
        command runs with (default: ``env``). ``checker`` (kernel tasks) takes the diff and
        says whether the kernel is correct: the ``check_kernel`` tool, in place of the tests,
        the timings and the profile."""
        self.checker = checker
        self.install = list(install)
        self.files = dict(files or {})
        self.source = source
        self.tests_command = tests_command
        self.workload = workload
        self.workload_file = workload_file
        self.env = dict(env or {})
        self.tests_env = dict(tests_env if tests_env is not None else self.env)
        self.protected = list(protected)
        if workload.kind == "file" and workload_file is None:
            self.protected.append(workload.target)
        self.backend: Backend = backend
        self.image = image
        self.limits = limits or Limits()
        self.observation_chars = observation_chars
        self._base_s: float | None = None
        repo, self.base_sha = resolve(source)
        self._tmp = Path(tempfile.mkdtemp(prefix="optimizer-agent-")).resolve()
        self.root = self._tmp / "repo"
        try:
            self._git("clone", "--quiet", "--no-checkout", str(repo), str(self.root), cwd=self._tmp)
            self._git("checkout", "--quiet", "--detach", self.base_sha)
            if source.patch:
                self._apply(source.patch)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    # ---- lifecycle and git ---------------------------------------------------------------

    def close(self) -> None:
        """Remove the private clone. Safe to call twice."""
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run host git with no hooks and no system/global config: it only moves files."""
        where = ["-C", str(self.root)] if cwd is None else []
        return subprocess.run(
            ["git", *_GIT_SAFE, *where, *args],
            cwd=cwd,
            env={**os.environ, **_GIT_ENV},
            capture_output=True,
            text=True,
            errors="replace",
        )

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        """Run host git (see ``_run``); its stdout, or a SandboxError when it fails."""
        done = self._run(*args, cwd=cwd)
        if done.returncode:
            raise SandboxError(
                f"git {args[0]} failed in the agent's workspace: {done.stderr.strip()[:300]}",
                f"check that {self.source.repo} is a readable git repository (`git fsck`)",
            )
        return done.stdout

    def _apply(self, patch: str) -> None:
        """Apply the starting patch (a refinement's parent) to the clone's files."""
        patch_file = self._tmp / "start.patch"
        patch_file.write_text(patch if patch.endswith("\n") else patch + "\n")
        try:
            self._git("apply", "--whitespace=nowarn", str(patch_file))
        except SandboxError as exc:
            raise PatchError(
                f"patch does not apply to {self.source.rev} ({self.base_sha[:12]}): "
                f"{exc.problem.split(': ', 1)[-1]}",
                "regenerate the patch against that revision (`git diff REV`)",
            ) from None
        finally:
            patch_file.unlink(missing_ok=True)

    def diff(self) -> str:
        """Every change in the clone, new files included, as a diff against ``source.rev``."""
        self._git("add", "-A")
        return self._git(
            "diff", "--cached", "--binary", "--no-renames", "--no-ext-diff", "--no-textconv",
            "--no-color", "--src-prefix=a/", "--dst-prefix=b/", self.base_sha,
        )  # fmt: skip

    # ---- the tool protocol -----------------------------------------------------------------

    def tools(self) -> list[dict[str, Any]]:
        return KERNEL_TOOLS if self.checker else TOOLS

    def execute(self, call: ToolCall) -> str:
        """Run one tool call; a bad call raises ToolError, ``submit`` raises Submitted."""
        handler: Callable[..., str] | None = {
            "list_files": self.list_files,
            "read_file": self.read_file,
            "search": self.search,
            "edit": self.edit,
            "create_file": self.create_file,
            "run_tests": self.run_tests,
            "time_workload": self.time_workload,
            "profile": self.profile,
            "check_kernel": self.check_kernel,
            "submit": self.submit,
        }.get(call.name)
        names = [t["function"]["name"] for t in self.tools()]
        if handler is None or call.name not in names:
            listed = ", ".join(names)
            raise ToolError(f"unknown tool {call.name!r}; the tools are: {listed}")
        args = call.arguments if isinstance(call.arguments, dict) else {}
        try:
            inspect.signature(handler).bind(**args)
        except TypeError as exc:
            wanted = ", ".join(inspect.signature(handler).parameters)
            raise ToolError(f"bad arguments for {call.name}: {exc} (it takes: {wanted})") from None
        return truncate(handler(**args), self.observation_chars)

    # ---- paths -----------------------------------------------------------------------------

    def _path(self, raw: Any, *, write: bool = False) -> tuple[Path, str]:
        """The file a tool argument names, and its repository path; ToolError when it leaves
        the clone, or (for writes) is protected or reserved."""
        if not isinstance(raw, str) or not raw.strip():
            raise ToolError("give a path relative to the repository root, e.g. 'src/mod.py'")
        given = PurePosixPath(raw.strip())
        if given.is_absolute() or ".." in given.parts:
            raise ToolError(
                f"{raw!r} leaves the repository: give a path relative to its root, without '..'"
            )
        full = (self.root / given).resolve()
        if not full.is_relative_to(self.root):
            raise ToolError(f"{raw!r} is a symlink that points outside the repository")
        rel = full.relative_to(self.root).as_posix()
        if rel.split("/")[0] == ".git":
            raise ToolError(f"{raw!r} is inside .git/, which the tools do not touch")
        if write:
            for name in {given.as_posix(), rel}:
                if rel == "." or name.split("/")[0] in _RESERVED:
                    raise ToolError(f"{raw!r} is reserved for git and the judge's harness")
                if is_protected(name, self.protected):
                    raise ToolError(
                        f"{raw!r} is protected (tests, the workload or their configuration): "
                        "the judge rejects any change to it. Speed up the code it exercises."
                    )
        return full, rel

    def _files(self, rel: str) -> list[str]:
        """Tracked and untracked (not ignored) files under ``rel``, as repository paths."""
        out = self._git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", rel)
        names = sorted({n for n in out.split("\0") if n})
        return [n for n in names if (self.root / n).is_file()]

    def _text(self, full: Path, rel: str) -> str:
        """A file's text, or ToolError for a missing, directory or binary file."""
        if full.is_dir():
            raise ToolError(f"{rel} is a directory; list_files shows what is in it")
        if not full.is_file():
            raise ToolError(f"no such file: {rel} (list_files shows the tree)")
        data = full.read_bytes()
        if b"\0" in data[:8192]:
            raise ToolError(f"{rel} is a binary file ({len(data)} bytes); the tools edit text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{rel} is not UTF-8 text; the tools edit UTF-8 text only") from None

    # ---- reading ---------------------------------------------------------------------------

    def list_files(self, path: str = ".") -> str:
        """The files under ``path``, capped at a few hundred."""
        full, rel = self._path(path)
        if not full.exists():
            raise ToolError(f"no such directory: {path}")
        files = self._files(rel)
        if not files:
            return f"no files under {rel}"
        more = len(files) - _MAX_LIST
        tail = f"\n... and {more} more files; list a subdirectory" if more > 0 else ""
        return "\n".join(files[:_MAX_LIST]) + tail

    def read_file(self, path: str, start_line: int = 1, end_line: int | None = None) -> str:
        """Numbered lines ``start_line..end_line`` of a file, at most a few hundred."""
        full, rel = self._path(path)
        lines = self._text(full, rel).splitlines()
        start = max(1, _int(start_line, "start_line"))
        end = len(lines) if end_line is None else min(len(lines), _int(end_line, "end_line"))
        if start > max(len(lines), 1):
            raise ToolError(f"{rel} has {len(lines)} lines; start_line {start} is past its end")
        end = min(end, start + _MAX_READ_LINES - 1)
        width = len(str(end))
        body = "\n".join(f"{i:>{width}}| {lines[i - 1]}" for i in range(start, end + 1))
        more = f"\n(more: read_file start_line={end + 1})" if end < len(lines) else ""
        return f"{rel} (lines {start}-{end} of {len(lines)})\n{body}{more}"

    def search(self, pattern: str, path: str = ".") -> str:
        """``file:line: text`` for each line under ``path`` matching the regex ``pattern``."""
        try:
            regex = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ToolError(f"bad regular expression {pattern!r}: {exc}") from None
        _, rel = self._path(path)
        hits: list[str] = []
        for name in self._files(rel):
            for number, line in _text_lines(self.root / name):
                if regex.search(line):
                    hits.append(f"{name}:{number}: {line.strip()[:200]}")
                    if len(hits) > _MAX_MATCHES:
                        more = "\n... more matches: narrow the pattern or the path"
                        return "\n".join(hits[:_MAX_MATCHES]) + more
        return "\n".join(hits) if hits else f"no matches for {pattern!r} under {rel}"

    # ---- writing ---------------------------------------------------------------------------

    def edit(self, path: str, search: str, replace: str) -> str:
        """Replace the one exact occurrence of ``search``; refuse zero or several loudly."""
        full, rel = self._path(path, write=True)
        if not full.exists():
            raise ToolError(f"no such file: {rel}; use create_file to add a new file")
        text = self._text(full, rel)
        if not isinstance(search, str) or not isinstance(replace, str) or not search:
            raise ToolError("give `search` (the exact lines to replace) and `replace` as text")
        count = text.count(search)
        if count == 0:
            raise ToolError(f"the search text was not found in {rel}. {_near_miss(text, search)}")
        if count > 1:
            raise ToolError(
                f"in {rel}, the search text was found {count} times; "
                "include more surrounding lines to make it unique"
            )
        at = text.index(search)
        full.write_bytes(text.replace(search, replace, 1).encode("utf-8"))
        first = text.count("\n", 0, at) + 1
        return (
            f"edited {rel}: lines {first}-{first + search.count(chr(10))} replaced by "
            f"{replace.count(chr(10)) + 1} line(s). Run the tests before you go on."
        )

    def create_file(self, path: str, content: str) -> str:
        """Create a new file; refuse to overwrite an existing one."""
        full, rel = self._path(path, write=True)
        if full.exists() or full.is_symlink():
            raise ToolError(f"{rel} already exists; use edit to change it")
        if not isinstance(content, str):
            raise ToolError("give `content` as text")
        if self._run("check-ignore", "-q", "--", rel).returncode == 0:
            raise ToolError(f"{rel} is ignored by .gitignore, so it would not be in the patch")
        try:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise ToolError(f"cannot create {rel}: {exc.strerror}") from None
        return f"created {rel} ({content.count(chr(10)) + 1} lines)"

    def submit(self, summary: str = "") -> str:
        raise Submitted(str(summary))

    # ---- running (always in a sandbox) -------------------------------------------------------

    def _sandbox(self, patch: str | None) -> Sandbox:
        """A fresh sandbox copy of the base plus ``patch``, from the private clone."""
        src = Source(repo=self.root, rev=self.base_sha, patch=patch)
        sb = open_sandbox(src, self.backend, limits=self.limits, image=self.image)
        if self.files:
            sb.write_files(self.files)
        for command in self.install:
            run = sb.run(command, env=self.env)
            if not run.ok:
                sb.close()
                tail = truncate((run.stderr or run.stdout).strip(), 1500)
                raise UserError(f"the install command `{command}` failed ({run.reason}): {tail}")
        return sb

    def check_kernel(self) -> str:
        """The judge's verdict on the current kernel (kernel tasks only)."""
        assert self.checker is not None
        return self.checker(self.diff())

    def run_tests(self) -> str:
        """Run the test command on the current code; its exit status and output tail."""
        if not self.tests_command:
            return "This task has no test command: there are no tests to run."
        command = self.tests_command.replace("{junit}", JUNIT_PATH)
        try:
            with self._sandbox(self.diff() or None) as sb:
                run = sb.run(command, env=self.tests_env, collect=[JUNIT_PATH])
        except UserError as exc:
            return f"the tests could not start: {exc}"
        verdict = "PASSED" if run.ok else f"FAILED ({run.reason or run.status.value})"
        counts = _junit_counts(run.files.get(JUNIT_PATH))
        output = (run.stdout + ("\n" + run.stderr if run.stderr else "")).strip()
        tail = truncate(output, 3000) if output else "(no output)"
        return f"tests {verdict}, exit code {run.exit_code}{counts}\n{tail}"

    def _median_s(self, patch: str | None, repeats: int) -> float:
        """The median wall time of ``repeats`` fresh processes of the workload."""
        with self._sandbox(patch) as sb:
            target = install(sb, self.workload, self.workload_file)
            sb.seal()
            runs = [measure_wall(sb, target, env=self.env) for _ in range(repeats)]
        return statistics.median(r.seconds for r in runs)

    def time_workload(self, repeats: int = 3) -> str:
        """A quick timing of the current code against the base (timed once, then cached)."""
        repeats = min(10, max(1, _int(repeats, "repeats")))
        try:
            if self._base_s is None:
                self._base_s = self._median_s(None, repeats)
        except (ProfileError, UserError) as exc:
            return f"the workload failed on the base (unchanged) code: {_why(exc)}"
        try:
            now = self._median_s(self.diff() or None, repeats)
        except (ProfileError, UserError) as exc:
            return f"the workload crashed on the current code: {_why(exc)}"
        ratio = self._base_s / now if now > 0 else float("inf")
        trend = "faster" if ratio >= 1 else "SLOWER"
        return (
            f"current code: {_ms(now)} (median of {repeats} runs)\n"
            f"base:         {_ms(self._base_s)}\n"
            f"ratio:        {ratio:.2f}x ({trend} than the base)\n"
            "This is a rough number from a few runs, not the judge's measurement."
        )

    def profile(self) -> str:
        """cProfile of the workload on the current code: the top 15 functions by own time."""
        if self.workload.kind != "file":
            return "profiling needs a Python workload file; this workload is a command"
        try:
            with self._sandbox(self.diff() or None) as sb:
                target = install(sb, self.workload, self.workload_file)
                report = profile_hotspots(sb, target, limits=self.limits, env=self.env)
        except (ProfileError, UserError) as exc:
            return f"the workload crashed under the profiler: {_why(exc)}"
        return hotspot_table(report)


def hotspot_table(report: HotspotReport, limit: int = 15) -> str:
    """The top functions with own and cumulative seconds, for a model to read."""
    lines = [
        f"cProfile of workload(), current code: {_ms(report.total_s)} profiled "
        "(the profiler slows calls: compare shares, not totals)",
        "   own s  own%    cum s  cum%    calls  function",
    ]
    for h in report.top[:limit]:
        lines.append(
            f"{h.own_s:8.4f} {h.own_share * 100:5.1f} {h.cum_s:8.4f} {h.cum_share * 100:5.1f} "
            f"{h.calls:8d}  {h.location}"
        )
    return "\n".join(lines)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name} must be an integer, not {value!r}") from None


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def _why(exc: Exception) -> str:
    return exc.cause if isinstance(exc, ProfileError) else str(exc)


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a text file; nothing for binary, huge or unreadable files."""
    try:
        if path.stat().st_size > _MAX_SEARCH_BYTES:
            return
        data = path.read_bytes()
    except OSError:
        return
    if b"\0" in data[:8192]:
        return
    yield from enumerate(data.decode("utf-8", errors="replace").splitlines(), 1)


def _near_miss(text: str, search: str) -> str:
    """Why an exact search most likely failed, so the model's next try can succeed."""
    if re.match(r"\s*\d+\| ", search):
        return "Remove the line-number prefixes (`12| `) that read_file adds."
    squash = lambda s: "\n".join(ln.strip() for ln in s.splitlines())  # noqa: E731
    if squash(search) in squash(text):
        return "A match exists if indentation is ignored: copy the exact whitespace."
    return "Copy it exactly from read_file (whitespace matters), or read the file again."


def _junit_counts(data: bytes | None) -> str:
    """``, N tests: F failed, ...`` from the JUnit XML the run wrote, if any."""
    if not data:
        return ""
    try:
        cases = list(ET.fromstring(data).iter("testcase"))
    except ET.ParseError:
        return ""
    failed = sum(c.find("failure") is not None or c.find("error") is not None for c in cases)
    skipped = sum(c.find("skipped") is not None for c in cases)
    return f", {len(cases)} tests: {failed} failed, {skipped} skipped"
