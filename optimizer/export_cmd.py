"""`optimizer export`: verified (slow, fast) pairs from run and evaluation directories, as JSONL.

Thin: reading and verifying is :mod:`optimizer.export`; this module parses flags, writes the
file and prints the one-line summary.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from optimizer.errors import UserError
from optimizer.export import REASONS, collect, write_pairs

_PARAGRAPHS = (
    "Export verified (slow, fast) pairs as JSONL, for fine-tuning or RL (PIE, Effi-Code).",
    "Each DIR is an `optimizer run` directory (events.jsonl), an `optimizer evaluate` --out "
    "directory (evaluate.json, samples.jsonl, grades/), or a folder holding such directories.",
    "A pair is a patch the judge graded correct and significantly faster (verdict faster, the "
    "whole 95% CI above 1.0x) on its full measurement, hidden workloads included: a run's "
    "winner (its minimized patch) and its other fully measured faster candidates; an "
    "evaluation's faster samples that have their grade JSON. Each line holds the patch, the "
    "base's text of each file it changes (slow), their text with the patch applied (fast), "
    "the speedup with its CI, the tests, and the judge's evidence (per-workload speedups, p, "
    "pairs, where the whole grade is). The same patch on the same base is written once.",
    "Nothing unverified is written; what is left out is counted per reason: "
    + ", ".join(REASONS)
    + ".",
    "--out is written atomically. Exit 0 when at least one pair was exported; 1 when none "
    "was (the file is still written, empty, so no stale pairs remain); 2 for a user error "
    "(a DIR that is missing or neither kind, an unwritable --out folder).",
)
_HELP = "\n\n".join(_PARAGRAPHS)


def register(app: typer.Typer) -> None:
    """Add the `export` command to the app."""

    @app.command("export", help=_HELP)
    def export(
        dirs: Annotated[
            list[Path],
            typer.Argument(
                metavar="DIR",
                help="Run directories, evaluation directories, or folders of them.",
            ),
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="The JSONL file to write, one pair a line.")
        ],
        min_speedup: Annotated[
            float,
            typer.Option("--min-speedup", help="Leave out pairs whose speedup is below this."),
        ] = 1.0,
    ) -> None:
        if not math.isfinite(min_speedup) or min_speedup <= 0:
            raise UserError(
                f"--min-speedup {min_speedup:g} is not a positive number", "pass e.g. 1.0 or 1.2"
            )
        folder = out.expanduser().resolve().parent
        if not folder.is_dir():
            raise UserError(
                f"cannot write {out}: its folder {folder} does not exist",
                "create it, or pick another --out",
            )
        if out.expanduser().is_dir():
            raise UserError(f"--out {out} is a directory", "pass a file path, e.g. pairs.jsonl")
        result = collect(dirs, min_speedup)
        write_pairs(out.expanduser(), result.pairs)
        n, m = len(result.pairs), len(result.dirs)
        typer.echo(
            f"exported {n} pair{'s' * (n != 1)} from {m} director{'ies' if m != 1 else 'y'} "
            f"to {out} (left out: {result.left_out_text()})"
        )
        raise typer.Exit(0 if n else 1)
