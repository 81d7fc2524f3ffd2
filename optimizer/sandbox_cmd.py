"""`optimizer sandbox build|doctor`."""

import typer


def register(app: typer.Typer) -> None:
    """Add the sandbox commands."""
