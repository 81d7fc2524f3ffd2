"""Random argument lists thrown at every command (hypothesis), in process, through the
console-script entry point `optimizer.cli.main`: none may end in a traceback, every exit
code must be one the README documents (0, 1, 2; 3 for `ci` and `run`), and nothing may be
written outside the temp folder the test runs in.

The commands' own option lists drive the strategy (walked from the typer app), so a new
option is fuzzed without touching this file. Positional arguments are junk that names no
real repo or suite, so no example starts real work; `sandbox build` and `demo`, which take
none and would, are left out.
"""

from __future__ import annotations

import os
import signal
import sys
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.cli import app, main

SKIP = {("sandbox", "build"), ("demo",)}
JUNK = ["(", "", "-5", "0", "nan", "1e999", "no/such/path", "builtin/no-such-task", "ü\u200b",
        "/nonexist/x.json", "HEAD~999"]  # fmt: skip
NUMBERS = ["-1", "0", "0.5", "2", "1e12", "nan", "inf", "-0", "abc", ""]


def _commands():
    import typer.main

    root = typer.main.get_command(app)
    found = []

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(sub, (*path, name))
        elif path not in SKIP:
            found.append((path, cmd))

    walk(root, ())
    return found


COMMANDS = _commands()


def _option_values(param) -> st.SearchStrategy[list[str]]:
    name = max(param.opts, key=len)
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if getattr(param, "is_flag", False) or annotation is bool:
        return st.just([name])
    choices = [str(c) for c in typing.get_args(annotation) if isinstance(c, str)]
    choices += [str(c) for c in getattr(getattr(param, "type", None), "choices", None) or []]
    text = repr(annotation)
    if choices and "Literal" in text:
        values = st.sampled_from([*choices, "nope"])
    elif "int" in text or "float" in text:
        values = st.sampled_from(NUMBERS)
    else:
        values = st.sampled_from(JUNK)
    return values.map(lambda v: [name, v])


@st.composite
def argv(draw):
    path, cmd = draw(st.sampled_from(COMMANDS))
    words = list(path)
    options = [p for p in cmd.params if getattr(p, "opts", None) and p.opts[0].startswith("-")]
    for param in draw(st.lists(st.sampled_from(options), max_size=4)) if options else []:
        if param.name == "help":
            continue
        words += draw(_option_values(param))
    positionals = [p for p in cmd.params if not p.opts[0].startswith("-")]
    for _ in positionals:
        if draw(st.booleans()) or len(words) == len(path):
            words.append(draw(st.sampled_from(JUNK)))
    if draw(st.integers(0, 9)) == 0 and options:  # a typo of a real option
        name = max(draw(st.sampled_from(options)).opts, key=len)
        words.append(name[:-1] + "x")
    return words


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@settings(max_examples=int(os.environ.get("OPTIMIZER_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(args=argv())
def test_no_argument_list_ends_in_a_traceback(args, tmp_path_factory, capsys, monkeypatch):
    work = tmp_path_factory.mktemp("fuzz")
    monkeypatch.chdir(work)
    monkeypatch.setenv("OPTIMIZER_CACHE", str(work / ".cache"))
    monkeypatch.setenv("HOME", str(work / "home"))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    monkeypatch.setenv("OPTIMIZER_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setattr(sys, "argv", ["optimizer", *args])
    before = _tree(Path("/nonexist"))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for sig, handler in handlers.items():  # main() installs its own; pytest keeps its
            signal.signal(sig, handler)
    out = capsys.readouterr()
    # the README's exit codes: ci 3 is a user error (its 2 is "inconclusive"); run 3 is stopped
    allowed = {0, 1, 2, 3} if args[:1] in (["ci"], ["run"]) else {0, 1, 2}
    assert code in allowed, (args, code, out.err[-2000:])
    assert "Traceback" not in out.err and "Traceback" not in out.out, (args, out.err[-3000:])
    if code == 2 or (code == 3 and args[:1] == ["ci"]):
        lines = [ln for ln in out.err.splitlines() if ln.strip()]
        assert lines and (lines[-1].startswith("error:") or "Usage" in out.err + out.out), (
            args,
            out.err[-2000:],
        )
    assert _tree(Path("/nonexist")) == before, args  # nothing made where the user did not say


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["ci", ".", "--budget", "0"], 3, "'--budget'"),
        (["ci", ".", "--metrc", "wall"], 3, "No such option: --metrc"),
        (["bench", ".", "-w", "b.py", "--wall-floor", "-1"], 2, "'--wall-floor'"),
        (["sandbox", "run", ".", "--timeout", "-1", "--", "true"], 2, "'--timeout'"),
        (["sandbox", "run", ".", "--memory", "0", "--", "true"], 2, "'--memory'"),
        (["tasks", "validate", "builtin", "--repeats", "0"], 2, "'--repeats'"),
        (["grade", "builtin/spans", "--sandbox", "foo"], 2, "'--sandbox'"),
        (["nosuch"], 2, "No such command"),
        (["bench", ".", "-w", "b.py", "-n", "10", "--max-repeats", "5"], 2, "below --repeats 10"),
    ],
)
def test_the_issues_examples_are_one_line_errors(args, code, words, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["optimizer", *args])
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(SystemExit) as done:
        try:
            main()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert done.value.code == code, err
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], lines
    assert "Fix: " in lines[0]
