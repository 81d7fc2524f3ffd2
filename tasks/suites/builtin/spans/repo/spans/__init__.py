"""spans: closed integer intervals, merged, measured and parsed."""

from spans.interval import Interval
from spans.merge import merge
from spans.ops import coverage_at, gaps, intersect, total_length
from spans.parse import format_spans, parse_spans

__all__ = [
    "Interval",
    "coverage_at",
    "format_spans",
    "gaps",
    "intersect",
    "merge",
    "parse_spans",
    "total_length",
]
