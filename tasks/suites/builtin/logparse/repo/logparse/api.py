"""The public entry points: summarize lines or a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from logparse import stats
from logparse.parser import parse_lines


def summarize(lines: Iterable[str], fmt: str = "common", top: int = 10) -> dict:
    """A summary of a log: counts, statuses, bytes per host, top paths, traffic per hour."""
    records, bad = parse_lines(lines, fmt)
    return {
        "records": len(records),
        "malformed": bad,
        "status": stats.status_counts(records),
        "bytes_by_host": stats.bytes_by_host(records),
        "top_paths": stats.top_paths(records, top),
        "per_hour": stats.per_hour(records),
        "error_rate": stats.error_rate(records),
    }


def summarize_file(path: str | Path, fmt: str = "common", top: int = 10) -> dict:
    with open(path, encoding="utf-8", errors="replace") as f:
        return summarize(f, fmt, top)
