"""`optimizer score`: compute a benchmark metric from a results JSONL file.

Thin: reading is :mod:`optimizer.results`, computing is :mod:`optimizer.scoring.report`,
this module parses flags and presents the table (and the ``--json`` file).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from optimizer import options
from optimizer.console import table_console
from optimizer.errors import UserError
from optimizer.results import load_results, write_json_atomic
from optimizer.scoring.report import DEFAULT_PS, METRICS, Cell, ScoreTable, score_results

_METRIC_HELP = "Metric: " + "; ".join(f"{name}: {text}" for name, text in METRICS.items())


def _parse_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise UserError(
            f"-k {text!r} is not a list of positive integers", "pass e.g. -k 1 or -k 1,10"
        )
    return list(dict.fromkeys(values))


def _parse_floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise UserError(
            f"-p {text!r} is not a list of non-negative numbers", "pass e.g. -p 0,1,1.5,2"
        )
    return list(dict.fromkeys(values))


def _cell(value: Cell) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _json_ready(value: Cell) -> Cell:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _render(table: ScoreTable, source: str) -> Table:
    out = Table(
        title=f"{table.metric} — {source} ({table.n_tasks} tasks, {table.n_results} results)"
    )
    for column in table.columns:
        justify = "left" if column in ("agent", "model") else "right"
        out.add_column(column, justify=justify, overflow="fold")
    for row in table.rows:
        out.add_row(*(_cell(row[c]) for c in table.columns))
    return out


def register(app: typer.Typer) -> None:
    """Add the `score` command to the app."""

    @app.command("score")
    def score(
        results: Annotated[
            Path, typer.Argument(help="Results JSONL file written by `optimizer evaluate`.")
        ],
        metric: Annotated[
            str,  # not a Literal: read case-insensitively; the metavar lists the choices
            typer.Option("--metric", "-m", metavar=f"<{'|'.join(METRICS)}>", help=_METRIC_HELP),
        ],
        k: Annotated[
            str, typer.Option("-k", "--k-values", help="Comma-separated k values, e.g. 1,10.")
        ] = "1",
        p: Annotated[
            str,
            typer.Option(
                "-p", "--thresholds", help="fast_p thresholds p, comma-separated (fastp)."
            ),
        ] = ",".join(f"{v:g}" for v in DEFAULT_PS),
        json_path: Path | None = options.json_out("the numbers"),
    ) -> None:
        """Score a results file with one benchmark's metric, at each k."""
        metric = metric.strip().lower()
        if metric not in METRICS:
            raise UserError(f"unknown metric {metric!r}", f"use one of: {', '.join(METRICS)}")
        ks = _parse_ints(k)
        ps = _parse_floats(p)
        if json_path is not None and not json_path.resolve().parent.is_dir():
            raise UserError(
                f"cannot write {json_path}: its folder does not exist", "create it, or pick another"
            )
        table = score_results(load_results(results), metric, ks, ps)
        table_console().print(_render(table, str(results)))
        if json_path is not None:
            write_json_atomic(
                json_path,
                {
                    "metric": table.metric,
                    "results_file": str(results),
                    "n_tasks": table.n_tasks,
                    "n_results": table.n_results,
                    "rows": [{c: _json_ready(row[c]) for c in table.columns} for row in table.rows],
                },
            )
