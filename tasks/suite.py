"""Suites: which tasks a run covers, from one spec string.

* ``builtin``: every task directory under the package's ``tasks/suites/builtin/``;
* ``SUITE/ID``: the one task ``ID`` of any suite below (``builtin/spans``, ``data.jsonl/ID``);
* a task directory, or its ``task.toml``;
* a directory of task directories;
* a dataset, imported (see :mod:`tasks.importers`): a SWE-fficiency, GSO or PIE ``.jsonl`` /
  ``.json`` file, or a KernelBench folder.
"""

from __future__ import annotations

from pathlib import Path

from tasks.importers import DATASET_SUFFIXES, import_dataset, kernelbench
from tasks.model import TASK_FILE, Task, TaskError, load_task

BUILTIN = "builtin"
BUILTIN_DIR = Path(__file__).resolve().parent / "suites" / "builtin"

_SPEC_HELP = (
    "pass builtin, SUITE/ID (builtin/spans), a task directory (with task.toml), a directory "
    "of task directories, a SWE-fficiency/GSO/PIE .jsonl or .json file, or a KernelBench folder"
)


def _task_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and (d / TASK_FILE).is_file())


def _load_dirs(dirs: list[Path]) -> list[Task]:
    tasks = [load_task(d) for d in dirs]
    seen: dict[str, Path] = {}
    for task in tasks:
        if task.id in seen:
            raise TaskError(
                f"{task.root / TASK_FILE}: field 'id': {task.id!r} is also the id of "
                f"{seen[task.id] / TASK_FILE}",
                "give every task its own id",
            )
        seen[task.id] = task.root
    return sorted(tasks, key=lambda t: t.id)


def load_suite(
    spec: str | Path,
    *,
    cases_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> list[Task]:
    """The tasks named by ``spec``; a one-line :class:`TaskError` when it names none.

    ``cases_dir`` is the PIE test-case folder (``<problem_id>/input.<i>.txt``); ``cache_dir``
    overrides where imported task directories are written.
    """
    cases = Path(cases_dir) if cases_dir is not None else None
    cache = Path(cache_dir) if cache_dir is not None else None
    if str(spec) == BUILTIN:
        return _load_dirs(_task_dirs(BUILTIN_DIR)) if BUILTIN_DIR.is_dir() else []
    path = Path(spec).expanduser()
    if not path.exists():
        suite, sep, task_id = str(spec).rstrip("/").rpartition("/")
        if sep and suite and task_id and (suite == BUILTIN or Path(suite).expanduser().exists()):
            # SUITE/ID: one task of a suite (builtin/spans, data.jsonl/ID, folder/ID); a
            # parent that is no suite leaves the path itself missing
            try:
                whole = load_suite(suite, cases_dir=cases_dir, cache_dir=cache_dir)
            except TaskError as exc:
                if "holds no" not in exc.problem and "not a task file" not in exc.problem:
                    raise  # a suite with a broken task: that is the error to show
                whole = None
            if whole:
                return [find_task(whole, task_id)]
        raise TaskError(f"suite {str(spec)!r}: no such file or directory", f"{_SPEC_HELP}")
    if path.is_file():
        if path.name == TASK_FILE or path.suffix == ".toml":
            return [load_task(path)]
        if path.suffix in DATASET_SUFFIXES:
            return import_dataset(path, cases_dir=cases, cache_dir=cache)
        raise TaskError(f"{path}: not a task file or a dataset file", f"{_SPEC_HELP}")
    if (path / TASK_FILE).is_file():
        return [load_task(path)]
    if kernelbench.problem_files(path):
        return import_dataset(path, cache_dir=cache)
    dirs = _task_dirs(path)
    if dirs:
        return _load_dirs(dirs)
    raise TaskError(f"{path}: holds no {TASK_FILE} and no task directories", f"{_SPEC_HELP}")


def find_task(tasks: list[Task], task_id: str) -> Task:
    """The task with this id; a one-line TaskError listing some ids when there is none."""
    for task in tasks:
        if task.id == task_id:
            return task
    ids = [t.id for t in tasks]
    shown = ", ".join(ids[:10]) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
    raise TaskError(
        f"no task {task_id!r} in the suite", f"use one of: {shown or '(the suite is empty)'}"
    )
