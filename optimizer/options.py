"""Options that several commands share, defined once: the same name, choices, default and
help wherever they appear (asv's way). A command takes one as its parameter's default:

    sandbox: Backend = options.SANDBOX
"""

from __future__ import annotations

import typer

#: Where candidate code runs. `auto` says so when it falls back to local.
SANDBOX = typer.Option(
    "auto",
    "--sandbox",
    help="Where the code runs: docker (a container, no network), local (a subprocess, "
    "bubblewrap when installed), or auto (docker when an engine answers, else local, "
    "said on stderr).",
)

#: Requirements to install where the code runs.
PIP = typer.Option(
    [],
    "--pip",
    metavar="REQ",
    help="A requirement to install where the code runs (repeatable): an env layer on the "
    "base image in docker, a private virtualenv locally.",
)

#: How each fresh process times the workload (None: the task's `workload.protocol`).
PROTOCOL = typer.Option(
    None,
    "--protocol",
    help="cold: one call per fresh process, one-time costs included; warm: setup(), "
    "warm-up calls, then the median of N timed calls in each fresh process (steady state; "
    "caches across calls are not credited). Default: the task's (imported SWE-fficiency and "
    "GSO tasks: warm; PIE and the rest: cold).",
)


def budget(default: float, per: str, minimum: float | None = 0.1):
    """``--budget``: the measuring time per `per` (the commands differ in what one unit is)."""
    return typer.Option(
        default,
        "--budget",
        min=minimum,
        help=f"Seconds of measuring per {per}: pairs are added until the verdict is clear "
        "or this is spent (then: inconclusive).",
    )


def timeout(default: float, note: str = ""):
    """``--timeout``: the wall-clock limit of one run of the code."""
    return typer.Option(
        default, "--timeout", min=0.1, help=f"Wall-clock limit of one run, in seconds{note}."
    )


def repeats(*short: str, minimum: int | None = 2):
    """``--repeats``: the interleaved base/candidate pairs measured before any more."""
    return typer.Option(
        10, "--repeats", *short, min=minimum, help="Interleaved wall-clock pairs to start with."
    )


def json_out(what: str):
    """``--json``: where to write the command's record (its folder must exist)."""
    return typer.Option(None, "--json", help=f"Write {what} to this JSON file.")


#: Each command's help ends with an example and its exit codes (the README's, in short).
EPILOGS = {
    "run": "Example: optimizer run ~/src/mylib --workload bench.py --tests 'pytest -q'. "
    "Exit codes: 0 winner committed, 1 no significant winner, 2 user error, 3 stopped by a "
    "budget (resumable), 130 Ctrl-C (resumable).",
    "show": "Example: optimizer show runs/20261201-1200-ab12 --html report.html. "
    "Exit codes: 0 shown, 2 user error.",
    "demo": "Example: optimizer demo. Exit codes: those of run (0 the replayed run "
    "committed its winner).",
    "score": "Example: optimizer score results.jsonl --metric effk -k 1,10. "
    "Exit codes: 0 scored, 2 user error.",
    "bench": "Example: optimizer bench . -w bench.py --base HEAD~1 --head HEAD. "
    "Exit codes: 0 measured (the verdict is in the table), 2 user error, 130 Ctrl-C.",
    "grade": "Example: optimizer grade builtin/spans --patch fix.diff. Exit codes: 0 correct, "
    "1 rejected or wrong, 2 user error.",
    "evaluate": "Example: optimizer evaluate --suite builtin --agent oracle -k 3. "
    "Exit codes: 0 every sample has an outcome, 1 some failed by the harness's fault "
    "(--retry-failed), 2 user error, 130 interrupted (re-run to resume).",
    "export": "Example: optimizer export evaluation/ --out pairs.jsonl. "
    "Exit codes: 0 at least one pair written, 1 none, 2 user error.",
    "ci": "Example: optimizer ci . --base origin/main --json ci.json --junit ci.xml. "
    "Exit codes: 0 no regression, 1 confirmed regression, 2 inconclusive, 3 user error or "
    "a broken gate.",
    "build": "Example: optimizer sandbox build. Exit codes: 0 built or up to date, 2 error.",
    "doctor": "Example: optimizer sandbox doctor. Exit codes: 0 all ok, 1 something missing.",
    "sandbox run": "Example: optimizer sandbox run . --pip pytest -- python3 -m pytest -q. "
    "Exit codes: 0 the command succeeded, 1 it did not, 2 user error.",
    "list": "Example: optimizer tasks list builtin. Exit codes: 0 listed, 2 user error.",
    "tasks show": "Example: optimizer tasks show builtin spans. Exit codes: 0, 2 user error.",
    "validate": "Example: optimizer tasks validate builtin --sandbox docker. "
    "Exit codes: 0 every task valid, 1 some failed validation, 2 user error.",
    "new": "Example: optimizer tasks new ~/src/lib --base abc123 --expert def456 "
    "--workload bench.py. Exit codes: 0 written (and valid), 1 invalid, 2 user error.",
}
