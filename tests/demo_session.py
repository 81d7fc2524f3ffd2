"""The model session `optimizer demo` replays, written as a script of replies.

``python -m tests.demo_session`` rewrites ``optimizer/demo/session.jsonl``; a test checks the
shipped file matches. The session: two ideas; candidate c1 edits carelessly (it drops the
case folding, so a test fails); candidate c2 counts in one pass and also rewrites
``unique_words`` with a set (a hunk the workload does not need, which minimization drops).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SESSION = Path(__file__).resolve().parents[1] / "optimizer" / "demo" / "session.jsonl"

IDEAS = [
    {
        "title": "Cheaper normalize",
        "rationale": "normalize() is called for every word on every scan",
        "where": "textstats/core.py",
    },
    {
        "title": "Count in one pass",
        "rationale": "word_counts rescans the text once per distinct word (quadratic); "
        "one pass with a dict is linear",
        "where": "textstats/core.py",
    },
]

OLD_COUNTS = """    counts: dict[str, int] = {}
    for word in unique_words(text):
        counts[word] = sum(1 for raw in text.split() if normalize(raw) == word)
    return counts"""
NEW_COUNTS = """    counts: dict[str, int] = {}
    for raw in text.split():
        word = normalize(raw)
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts"""
OLD_UNIQUE = """    seen: list[str] = []
    for raw in text.split():
        word = normalize(raw)
        if word and word not in seen:
            seen.append(word)
    return seen"""
NEW_UNIQUE = """    seen: dict[str, None] = {}
    for raw in text.split():
        word = normalize(raw)
        if word:
            seen.setdefault(word, None)
    return list(seen)"""

THREADS: dict[str, list[tuple[str, list[tuple[str, dict[str, Any]]]]]] = {
    "ideas": [("```json\n" + json.dumps(IDEAS, indent=1) + "\n```", [])],
    "c1": [
        ("Let me look at the code.", [("read_file", {"path": "textstats/core.py"})]),
        (
            "normalize() is slow; inline a cheaper version.",
            [
                (
                    "edit",
                    {
                        "path": "textstats/core.py",
                        "search": "    return word.lower().strip(PUNCTUATION)",
                        "replace": "    return word.strip(PUNCTUATION)",
                    },
                )
            ],
        ),
        ("Done.", [("submit", {"summary": "cheaper normalize"})]),
    ],
    "c2": [
        ("Profile first.", [("profile", {})]),
        (
            "word_counts rescans the text per word. Count in one pass.",
            [
                (
                    "edit",
                    {
                        "path": "textstats/core.py",
                        "search": OLD_COUNTS,
                        "replace": NEW_COUNTS,
                    },
                )
            ],
        ),
        (
            "unique_words uses a list for membership; use a dict.",
            [
                (
                    "edit",
                    {
                        "path": "textstats/core.py",
                        "search": OLD_UNIQUE,
                        "replace": NEW_UNIQUE,
                    },
                )
            ],
        ),
        ("Check the tests.", [("run_tests", {})]),
        ("Time it.", [("time_workload", {"repeats": 3})]),
        ("Faster and correct.", [("submit", {"summary": "one-pass counting"})]),
    ],
}


def reply(thread: str, step: int, content: str, calls: list[tuple[str, dict]]) -> dict:
    """A model_call record as a run directory holds it (tools mode)."""
    wire = [
        {
            "id": f"call_{thread}_{step}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if wire:
        message["tool_calls"] = wire
    return {
        "type": "model_call",
        "v": 1,
        "t": 0.0,
        "thread": thread,
        "step": step,
        "request_sha": "",
        "cost_usd": 0.0,
        "tokens": 0,
        "reply": {
            "content": content,
            "tool_calls": [
                {"name": n, "arguments": a, "id": w["id"]}
                for (n, a), w in zip(calls, wire, strict=True)
            ],
            "mode": "tools",
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0},
            "message": message,
        },
    }


def records() -> list[dict]:
    return [
        reply(thread, step, content, calls)
        for thread, steps in THREADS.items()
        for step, (content, calls) in enumerate(steps)
    ]


def text() -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records())


if __name__ == "__main__":
    SESSION.write_text(text())
    print(f"wrote {SESSION}")
