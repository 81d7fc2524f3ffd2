"""Agents that need no model: ``oracle``, ``noop`` and ``predictions``.

Each is a :class:`Proposer`: given a task and a sample index, it returns the patch to grade.

- ``oracle`` proposes the task's expert patch: it validates the harness (SR must come out
  at about 1);
- ``noop`` proposes nothing: the floor (SR = 1 / the expert's speedup);
- ``predictions`` proposes patches another system already produced, read from a JSONL file
  in the SWE-bench / SWE-fficiency predictions format (``instance_id``,
  ``model_name_or_path``, ``model_patch``); the i-th line for an instance is its sample i.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sandbox.errors import UserError
from tasks.importers.common import read_rows, safe_id
from tasks.model import Task
from tasks.source import expert_patch


@dataclass
class Proposal:
    """What an agent proposed for one sample, and what it cost."""

    patch: str
    cost_usd: float | None = None  # None: not known (another system's predictions)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    steps: int | None = None
    exit: str | None = None
    run_dir: str | None = None
    failed: str | None = None  # why the agent produced nothing gradable
    harness: bool = False  # that failure is the infrastructure's (e.g. the API was down)


class Proposer(Protocol):
    """An agent as `optimizer evaluate` drives it: one proposal per (task, sample)."""

    name: str
    model: str | None

    def samples(self, task: Task, k: int) -> int:
        """How many of the k samples this agent can propose for ``task``."""
        ...

    def propose(self, task: Task, sample: int) -> Proposal: ...


class Oracle:
    name, model = "oracle", None

    def samples(self, task: Task, k: int) -> int:
        return k if task.expert.patch or task.expert.commit else 0

    def propose(self, task: Task, sample: int) -> Proposal:
        return Proposal(patch=expert_patch(task), **_FREE)


class Noop:
    name, model = "noop", None

    def samples(self, task: Task, k: int) -> int:
        return k

    def propose(self, task: Task, sample: int) -> Proposal:
        return Proposal(patch="", **_FREE)


#: What an agent without a model spends.
_FREE = {"cost_usd": 0.0, "prompt_tokens": 0, "completion_tokens": 0}

_FIELDS = ("instance_id", "model_patch")


class Predictions:
    """Patches from a predictions JSONL; ``model`` is their ``model_name_or_path``."""

    name = "predictions"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_task: dict[str, list[str]] = {}
        models: list[str] = []
        for where, row in _rows(path):
            for field in _FIELDS:
                if not isinstance(row.get(field), str):
                    raise UserError(
                        f"{where}: field {field!r} is missing or not a string",
                        "write SWE-bench predictions: instance_id, model_name_or_path, model_patch",
                    )
            model = row.get("model_name_or_path")
            if model is not None and not isinstance(model, str):
                raise UserError(f"{where}: field 'model_name_or_path' is not a string",
                                "give the model's name as a string")  # fmt: skip
            if model and model not in models:
                models.append(model)
            self.by_task.setdefault(safe_id(row["instance_id"]), []).append(row["model_patch"])
        if not self.by_task:
            raise UserError(f"{path} holds no predictions", "write one JSON object per line")
        if len(models) > 1:
            raise UserError(
                f"{path} mixes predictions of {len(models)} models ({', '.join(models[:3])})",
                "give each model its own predictions file and evaluate them one at a time",
            )
        self.model: str | None = models[0] if models else None

    def samples(self, task: Task, k: int) -> int:
        return min(k, len(self.by_task.get(task.id, [])))

    def propose(self, task: Task, sample: int) -> Proposal:
        return Proposal(patch=self.by_task[task.id][sample])

    def unmatched(self, tasks: list[Task]) -> list[str]:
        """Instance ids in the file that name no task of the suite."""
        ids = {t.id for t in tasks}
        return sorted(i for i in self.by_task if i not in ids)


def _rows(path: Path) -> list[tuple[str, dict]]:
    """The file's objects, each with its label (``name line N``): JSONL, or a JSON list."""
    path = path.expanduser()
    if not path.is_file():
        raise UserError(f"predictions file {path} does not exist", "pass --predictions FILE")
    return read_rows(path)
