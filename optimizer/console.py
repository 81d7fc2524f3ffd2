"""The console a command prints its tables to."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rich.console import Console


def table_console(width: int = 160) -> Console:
    """stdout for tables: a terminal's own width, else (piped, in CI) ``width`` columns,
    so a table is not folded to rich's 80-column default where no terminal says otherwise
    (``COLUMNS`` still wins)."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=width)
    return console


@contextlib.contextmanager
def step(console: Console, text: str) -> Iterator[None]:
    """A long step: a spinner in a terminal; elsewhere (CI logs, pipes) one plain line when
    it starts, so that a log never sits silent for minutes."""
    if console.is_terminal:
        with console.status(text):
            yield
    else:
        console.print(text, soft_wrap=True, highlight=False)
        yield
