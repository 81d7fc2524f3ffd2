"""Record every model reply, and replay a recording with no model at all.

A run's only non-determinism that costs money is the model. Recording each reply (per agent
thread, in step order) lets anyone rerun the same session offline: ``ReplayModel`` serves
the recorded replies back in order. Requests are not matched, because observations carry
timings that never repeat; their hash is kept only to show where a replay diverged. A
replay that runs out of replies can continue live through a fallback model, which is how a
killed run is resumed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from agents.protocols import Message, Model, ModelError, ModelReply, ToolCall, Usage


def reply_to_json(reply: ModelReply) -> dict[str, Any]:
    """A JSON-ready dict holding everything in ``reply`` (see :func:`reply_from_json`)."""
    return {
        "content": reply.content,
        "tool_calls": [
            {"name": call.name, "arguments": call.arguments, "id": call.id}
            for call in reply.tool_calls
        ],
        "mode": reply.mode,
        "usage": {
            "prompt_tokens": reply.usage.prompt_tokens,
            "completion_tokens": reply.usage.completion_tokens,
            "cost_usd": reply.usage.cost_usd,
        },
        "message": reply.message,
    }


def reply_from_json(data: dict[str, Any]) -> ModelReply:
    """The ModelReply that :func:`reply_to_json` wrote."""
    usage = data.get("usage") or {}
    return ModelReply(
        content=data.get("content", ""),
        tool_calls=[
            ToolCall(name=c["name"], arguments=dict(c.get("arguments") or {}), id=c.get("id", ""))
            for c in data.get("tool_calls", [])
        ],
        mode=data.get("mode", "tools"),
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost_usd=float(usage.get("cost_usd", 0.0)),
        ),
        message=dict(data.get("message") or {}),
    )


def request_sha(messages: list[Message], tools: list[dict[str, Any]]) -> str:
    """sha256 of the request as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(
        {"messages": messages, "tools": tools},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RecordingModel:
    """Delegates to ``inner`` and hands each reply to ``sink`` as one record.

    A record is ``{"thread", "step", "request_sha", "reply"}``, step counting from 0 per
    instance; the sink decides where records go (a JSONL file, a list in a test).
    """

    def __init__(self, inner: Model, thread: str, sink: Callable[[dict[str, Any]], None]) -> None:
        self.inner = inner
        self.thread = thread
        self.sink = sink
        self.name = inner.name
        self.step = 0

    @property
    def cost_usd(self) -> float:
        return float(getattr(self.inner, "cost_usd", 0.0))

    @property
    def mode(self) -> str:
        return str(getattr(self.inner, "mode", "tools"))

    def query(self, messages: list[Message], tools: list[dict[str, Any]]) -> ModelReply:
        """The inner model's reply, recorded after it arrives (failed queries leave none)."""
        reply = self.inner.query(messages, tools)
        self.sink(
            {
                "thread": self.thread,
                "step": self.step,
                "request_sha": request_sha(messages, tools),
                "reply": reply_to_json(reply),
            }
        )
        self.step += 1
        return reply


class ReplayModel:
    """Serves ``thread``'s recorded replies in step order, then ``fallback`` (or fails).

    ``cost_usd`` is new money only: replayed replies cost 0 (their recorded usage is kept
    in each reply, so a replayed run hits the same cost limit at the same step), and
    calls to the fallback cost what the fallback says.
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        thread: str,
        fallback: Model | None = None,
        name: str = "replay",
    ) -> None:
        mine = [r for r in records if r.get("thread") == thread]
        self.records = sorted(mine, key=lambda r: int(r.get("step", 0)))
        self.thread = thread
        self.fallback = fallback
        self.name = name
        self.replayed = 0
        self.diverged: list[int] = []  # steps whose request differed from the recording
        self.mode = self.records[0]["reply"].get("mode", "tools") if self.records else "tools"

    @property
    def cost_usd(self) -> float:
        return float(getattr(self.fallback, "cost_usd", 0.0)) if self.fallback else 0.0

    def query(self, messages: list[Message], tools: list[dict[str, Any]]) -> ModelReply:
        """The next recorded reply; past the end, the fallback's live reply."""
        step = self.replayed
        if step < len(self.records):
            record = self.records[step]
            if record.get("request_sha") not in (None, request_sha(messages, tools)):
                self.diverged.append(step)
            self.replayed += 1
            reply = reply_from_json(record["reply"])
            self.mode = reply.mode
            return reply
        if self.fallback is None:
            raise ModelError(
                f"the recording has no reply for step {step} of thread {self.thread}",
                "run without --replay to ask a model, or record a longer session",
            )
        reply = self.fallback.query(messages, tools)
        self.mode = reply.mode
        return reply
