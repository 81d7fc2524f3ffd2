"""The console a command prints its tables to."""

from __future__ import annotations

import os

from rich.console import Console


def table_console(width: int = 160) -> Console:
    """stdout for tables: a terminal's own width, else (piped, in CI) ``width`` columns,
    so a table is not folded to rich's 80-column default where no terminal says otherwise
    (``COLUMNS`` still wins)."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=width)
    return console
