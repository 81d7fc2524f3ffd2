"""Importers: public benchmark datasets, read unchanged, turned into task directories.

Each instance becomes a directory under
``<cache>/imported/<format>/<sha256 of the source, first 16 hex>/<task id>/`` (``<cache>`` is
``$OPTIMIZER_CACHE``, else ``~/.cache/optimizer``), written atomically and reused when already
there, then loaded with :func:`tasks.model.load_task`. The format is detected from content:

* a ``.jsonl``/``.json`` file whose rows have ``workload`` + ``base_commit``: SWE-fficiency;
  ``prob_script`` + ``opt_commit``: GSO; ``src_code`` + ``tgt_code``: PIE;
* a folder in KernelBench layout (``level1/23_Softmax.py``, ...): KernelBench.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from tasks.importers import gso, kernelbench, pie, swefficiency
from tasks.importers.common import (
    RowError,
    cache_root,
    file_digest,
    folder_digest,
    materialize,
    read_rows,
)
from tasks.model import Task, TaskError

ROW_FORMATS = {m.FORMAT: m for m in (swefficiency, gso, pie)}
FORMATS = (*ROW_FORMATS, kernelbench.FORMAT)
DATASET_SUFFIXES = (".jsonl", ".json")

__all__ = ["FORMATS", "detect", "detect_rows", "import_dataset"]


def detect_rows(rows: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The row format: the first row with a full signature decides, else the first hint."""
    for _, row in rows:
        for name, module in ROW_FORMATS.items():
            if all(k in row for k in module.SIGNATURE):
                return name
    for _, row in rows:
        for name, module in ROW_FORMATS.items():
            if any(k in row for k in module.HINTS):
                return name
    return None


def detect(path: Path) -> str | None:
    """The dataset format of a file or folder, or None when it is not one we import."""
    path = Path(path)
    if path.is_dir():
        return kernelbench.FORMAT if kernelbench.problem_files(path) else None
    if path.suffix in DATASET_SUFFIXES and path.is_file():
        return detect_rows(read_rows(path))
    return None


def import_dataset(
    path: Path,
    *,
    cases_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> list[Task]:
    """Every instance of a dataset file or folder, as loaded tasks (in dataset order)."""
    path = Path(path)
    root = cache_root(cache_dir)
    if path.is_dir():
        files = kernelbench.problem_files(path)
        if not files:
            raise TaskError(
                f"{path}: not a KernelBench folder (no level<N>/<N>_<Name>.py files)",
                "pass the KernelBench folder, a task directory or a dataset file",
            )
        parent = root / kernelbench.FORMAT / folder_digest(files, path)
        return [materialize(kernelbench.convert(f), parent, str(f)) for f in files]

    rows = read_rows(path)
    fmt = detect_rows(rows)
    if fmt is None:
        raise TaskError(
            f"{path.name}: unknown dataset format (no row has workload+base_commit, "
            "prob_script+opt_commit or src_code+tgt_code)",
            "pass a SWE-fficiency, GSO or PIE file unchanged",
        )
    digest = file_digest(path)
    if fmt == pie.FORMAT and cases_dir is not None:
        cases_dir = Path(cases_dir).resolve()
        digest += "-" + hashlib.sha256(str(cases_dir).encode()).hexdigest()[:8]
    parent = root / fmt / digest
    counts = Counter(str(row.get("problem_id")) for _, row in rows) if fmt == pie.FORMAT else {}

    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for n, (label, row) in enumerate(rows, 1):
        try:
            if fmt == pie.FORMAT:
                dup = counts.get(str(row.get("problem_id")), 0) > 1
                draft = pie.convert(row, cases_dir=cases_dir, suffix=str(n) if dup else None)
            else:
                draft = ROW_FORMATS[fmt].convert(row)
        except RowError as exc:
            raise TaskError(f"{label}: {exc.problem}", exc.fix) from None
        if draft.id in seen:
            raise TaskError(
                f"{label}: field 'instance_id': duplicate id {draft.id!r} (also {seen[draft.id]})",
                "give every instance its own id",
            )
        seen[draft.id] = label
        tasks.append(materialize(draft, parent, label))
    return tasks
