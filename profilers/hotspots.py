"""Hotspots: a cProfile summary of ``workload()`` (text for an LLM prompt, JSON), and a
speedscope file (https://www.speedscope.app) a person can open.

The speedscope profile is "sampled": one sample per function with its own time as the
weight, placed under the chain of its heaviest callers (cProfile keeps caller edges, not
whole stacks, so deeper stacks are a best guess; own times and totals are exact).
"""

from __future__ import annotations

import os
from typing import Any

from profilers.common import ProfileError, run_harness
from profilers.models import Hotspot, HotspotReport, Workload
from sandbox import Limits, Sandbox

Key = tuple[str, int, str]


def _key(row: dict[str, Any]) -> Key:
    return (str(row["file"]), int(row["line"]), str(row["func"]))


def _location(key: Key, workdir: str = "") -> str:
    file, line, func = key
    if file == "~":
        return func
    if workdir and file.startswith(workdir.rstrip("/") + "/"):
        file = file[len(workdir.rstrip("/")) + 1 :]
    elif "/lib/python" in file:
        file = os.path.basename(file)
    return f"{file}:{line}({func})"


def report(rows: list[dict[str, Any]], *, workdir: str = "", limit: int = 30) -> HotspotReport:
    """Build the summary and the speedscope profile from the harness's cProfile rows."""
    total = sum(float(r["own_s"]) for r in rows) or 1e-12
    by_key = {_key(r): r for r in rows}
    ranked = sorted(rows, key=lambda r: (-float(r["own_s"]), -float(r["cum_s"])))
    top = [
        Hotspot(
            location=_location(_key(r), workdir),
            calls=int(r["calls"]),
            own_s=float(r["own_s"]),
            cum_s=float(r["cum_s"]),
            own_share=float(r["own_s"]) / total,
            cum_share=min(1.0, float(r["cum_s"]) / total),
        )
        for r in ranked[:limit]
    ]
    frames: list[dict[str, Any]] = []
    index: dict[Key, int] = {}

    def frame(key: Key) -> int:
        if key not in index:
            index[key] = len(frames)
            entry: dict[str, Any] = {"name": _location(key, workdir)}
            if key[0] != "~":
                entry.update(file=key[0], line=key[1])
            frames.append(entry)
        return index[key]

    samples, weights = [], []
    for r in ranked:
        if float(r["own_s"]) <= 0:
            continue
        chain = [_key(r)]
        while True:
            callers = [c for c in by_key[chain[-1]]["callers"] if _key(c) not in chain]
            callers = [c for c in callers if _key(c) in by_key]
            if not callers:
                break
            chain.append(_key(max(callers, key=lambda c: float(c["cum_s"]))))
        samples.append([frame(k) for k in reversed(chain)])
        weights.append(float(r["own_s"]))
    speedscope = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": "workload() (cProfile)",
                "unit": "seconds",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": "optimizer hotspots",
        "activeProfileIndex": 0,
        "exporter": "optimizer",
    }
    return HotspotReport(total_s=sum(weights), top=top, speedscope=speedscope)


def profile_hotspots(
    sb: Sandbox,
    workload: Workload,
    *,
    python: str = "python3",
    limits: Limits | None = None,
    limit: int = 30,
    env: dict[str, str] | None = None,
) -> HotspotReport:
    """Run ``workload()`` once under cProfile in a fresh process and summarize it."""
    data = run_harness(sb, "hotspots", workload, python=python, limits=limits, env=env)
    rows = data.get("functions")
    if not isinstance(rows, list) or not rows:
        raise ProfileError("garbage: the cProfile result has no functions")
    try:
        return report(rows, workdir=sb.workdir, limit=limit)
    except (KeyError, TypeError, ValueError):
        raise ProfileError("garbage: malformed cProfile result") from None
