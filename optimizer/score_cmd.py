"""`optimizer score`: placeholder, filled in by the scoring work (issue 4)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `score` command to the app."""
