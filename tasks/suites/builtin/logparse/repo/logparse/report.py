"""A plain-text report of a summary."""

from __future__ import annotations


def render(summary: dict) -> str:
    lines = [
        f"records: {summary['records']} (malformed: {summary['malformed']})",
        f"error rate: {summary['error_rate']:.2%}",
        "status: " + ", ".join(f"{k}={v}" for k, v in summary["status"].items()),
        "top paths:",
    ]
    lines += [f"  {count:6d}  {path}" for path, count in summary["top_paths"]]
    busiest = max(range(24), key=lambda h: summary["per_hour"][h])
    lines.append(f"busiest hour: {busiest:02d}:00")
    return "\n".join(lines) + "\n"
