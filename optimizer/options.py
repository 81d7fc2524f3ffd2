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
