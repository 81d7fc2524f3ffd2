"""Every command's `--help`, rendered through the console-script entry point as a user sees it:
no `<bool>` on a flag (typer's own `--help` and the root's `--version` included), the choices
of each choice option, an example and the exit codes, and one text per shared option.

The commands are walked from the typer app, so a new command is checked without touching
this file.
"""

from __future__ import annotations

import re
import sys

import pytest

from optimizer.cli import main

from .test_cli_fuzz import COMMANDS

PATHS = [(), ("sandbox",), ("tasks",), *[path for path, _ in COMMANDS], ("sandbox", "build"),
         ("demo",)]  # fmt: skip


def _help(path, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")  # one option a line: its help is not wrapped
    monkeypatch.setattr(sys, "argv", ["optimizer", *path, "--help"])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr().out
    assert exit_.value.code in (0, None), out
    return out


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "optimizer")
def test_help_has_no_bool_hint_and_ends_with_example_and_exit_codes(path, capsys, monkeypatch):
    out = _help(path, capsys, monkeypatch)
    assert "--help" in out
    assert "<bool>" not in out, out
    assert "Traceback" not in out
    if path and path not in {("sandbox",), ("tasks",)}:
        assert "Example: optimizer " + " ".join(path) in out, out
        assert "Exit codes:" in out, out
    for long in re.findall(r"(?<![\w-])--\w\b(?!-)", out):  # `--k`, `--p`: not a name
        pytest.fail(f"{' '.join(path)}: one-letter long option {long}")


def test_choice_options_list_their_choices(capsys, monkeypatch):
    seen = {}
    for path in PATHS:
        out = _help(path, capsys, monkeypatch)
        for name in ("--sandbox", "--metric", "--protocol", "--region"):
            line = next((ln for ln in out.splitlines() if f" {name} " in ln), None)
            if line is not None:
                seen[(path, name)] = line
                assert re.search(r"<[a-z_-]+(\|[a-z_-]+)+>", line), line
    assert {name for _, name in seen} == {"--sandbox", "--metric", "--protocol", "--region"}


#: Shared options (optimizer/options.py): one help text, or one template around the part that
#: names the command's own unit or record. `tasks new --pip` is another thing: requirements
#: written into the new task's env image.
SHARED = {
    "--sandbox": None,
    "--protocol": None,
    "--pip": None,
    "--repeats": None,
    "--budget": r"Seconds of measuring per [a-z ]+: pairs are added until the verdict is clear "
    r"or this is spent \(then: inconclusive\)\.",
    "--timeout": r"Wall-clock limit of one run, in seconds( \(.+\))?\.",
    "--json": r"Write .+ to this JSON file\.",
}


def test_shared_options_have_one_definition():
    texts: dict[str, set[str]] = {name: set() for name in SHARED}
    for path, cmd in COMMANDS:
        for param in cmd.params:
            for name in set(param.opts) & set(SHARED):
                if (path, name) == (("tasks", "new"), "--pip"):
                    continue
                texts[name].add(param.help)
                if SHARED[name] is not None:
                    assert re.fullmatch(SHARED[name], param.help), (path, name, param.help)
    for name, variants in texts.items():
        assert variants, f"no command has {name}"
        if SHARED[name] is None:
            assert len(variants) == 1, (name, variants)
