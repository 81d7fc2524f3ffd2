"""The console entry point. Importing the CLI takes a second or more (several under load),
before any signal handler of ours is set: a Ctrl-C in that window would end in Python's
KeyboardInterrupt traceback. Here it ends with one line and exit code 130, as a Ctrl-C
does at any later moment."""

from __future__ import annotations

import sys


def _interrupted(what: str) -> None:
    print(f"interrupted: {what}", file=sys.stderr)
    raise SystemExit(130) from None


def main() -> None:
    try:
        from optimizer.cli import main as run
    except KeyboardInterrupt:
        _interrupted("stopped while starting; nothing ran")
    try:
        run()
    except KeyboardInterrupt:  # the commands turn Ctrl-C into exit 130; this is the rest
        _interrupted("stopped")
