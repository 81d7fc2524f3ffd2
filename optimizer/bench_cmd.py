"""`optimizer bench`: placeholder, filled in by the measurement work (issue 3)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `bench` command to the app."""
