"""The agent loop, in the style of mini-swe-agent: query the model, run its tool calls, append
the observations, until it submits or a limit ends the run.

Every end is a typed exit (:class:`~agents.protocols.AgentExit`), and every end returns the
workspace's diff, so a run cut short by a limit still leaves its work to judge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from agents.model import tool_result_message
from agents.prompts import Prompts, render
from agents.protocols import (
    AgentExit,
    AgentResult,
    CostLimit,
    Environment,
    FormatError,
    FormatErrorLimit,
    Message,
    Model,
    ModelReply,
    StepLimit,
    Submitted,
    ToolCall,
    ToolError,
)
from agents.workspace import cut

Event = dict[str, Any]


class AgentConfig(BaseModel):
    """The limits of one agent run."""

    step_limit: int = Field(30, ge=1, description="Model queries before the run ends.")
    cost_limit_usd: float = Field(0.0, ge=0, description="Spend before the run ends; 0: none.")
    format_error_limit: int = Field(3, ge=1, description="Malformed replies before it ends.")
    observation_chars: int = Field(6000, ge=200, description="Longest observation kept.")


class Stopped(AgentExit):
    """The caller asked the loop to stop (its global budget, or Ctrl-C); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ToolAgent:
    """Loops model -> tool calls -> observations until ``submit`` or a limit."""

    def __init__(
        self,
        model: Model,
        env: Environment,
        prompts: Prompts,
        config: AgentConfig,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> None:
        self.model = model
        self.env = env
        self.prompts = prompts
        self.config = config
        self.on_event = on_event or (lambda _event: None)
        self.should_stop = should_stop or (lambda: None)
        self.messages: list[Message] = []
        self.steps = 0
        self.cost_usd = 0.0
        self.format_errors = 0

    def run(
        self,
        task: str,
        *,
        hotspots: str = "",
        idea: str = "",
        feedback: str = "",
        protected: Sequence[str] = (),
    ) -> AgentResult:
        """Work on ``task`` until the model submits or a limit ends the loop.

        A ModelError propagates: the caller records it (the workspace still holds the work).
        """
        instance = render(
            self.prompts.instance,
            task=task, hotspots=hotspots, idea=idea, feedback=feedback, protected=list(protected),
        )  # fmt: skip
        self.messages = [
            {"role": "system", "content": render(self.prompts.system)},
            {"role": "user", "content": instance},
        ]
        self.steps, self.cost_usd, self.format_errors = 0, 0.0, 0
        try:
            while True:
                self._check_limits()
                self.step()
        except AgentExit as end:
            return AgentResult(
                exit=end.reason,
                patch=self.env.diff(),
                steps=self.steps,
                cost_usd=self.cost_usd,
                message=str(end),
            )

    def _check_limits(self) -> None:
        """Raise the exit for whichever budget is spent, the caller's first."""
        reason = self.should_stop()
        if reason:
            raise Stopped(reason)
        if self.steps >= self.config.step_limit:
            raise StepLimit(f"{self.steps} steps")
        limit = self.config.cost_limit_usd
        if limit and self.cost_usd >= limit:
            raise CostLimit(f"${self.cost_usd:.4f} spent of ${limit:.4f}")

    def step(self) -> None:
        """One model query, and every tool call it names."""
        self.steps += 1
        tools = self.env.tools()
        try:
            reply = self.model.query(self.messages, tools)
        except FormatError as exc:
            self._format_error(str(exc), tools)
            return
        self.cost_usd += reply.usage.cost_usd
        self.messages.append(reply.message or {"role": "assistant", "content": reply.content})
        self._emit_reply(reply)
        if not reply.tool_calls:
            self._format_error("the reply contains no tool call", tools)
            return
        for call in reply.tool_calls:
            self._execute(call, reply.mode)

    def _execute(self, call: ToolCall, mode: str) -> None:
        """Run one call and append its observation; a bad call's error is the observation."""
        error = call.arguments.get("__error__") if isinstance(call.arguments, dict) else None
        try:
            if error is not None:
                raise ToolError(f"malformed arguments for {call.name}: {error}")
            output, failed = self.env.execute(call), False
        except ToolError as exc:
            output, failed = f"error: {exc}", True
        except Submitted:
            self._emit_call(call, "submitted", error=False)
            raise
        shown, elided = cut(output, self.config.observation_chars)
        text = render(self.prompts.observation, output=shown, elided=elided)
        self.messages.append(tool_result_message(call, text, mode))
        self._emit_call(call, shown, error=failed)
        if error is not None:
            self._count_format_error()

    def _format_error(self, error: str, tools: list[dict[str, Any]]) -> None:
        """Tell the model what a usable reply looks like; too many of these end the run."""
        names = [t.get("function", {}).get("name", "?") for t in tools]
        text = render(self.prompts.format_error, error=error, tools=names)
        self.messages.append({"role": "user", "content": text})
        self._count_format_error()

    def _count_format_error(self) -> None:
        self.format_errors += 1
        if self.format_errors >= self.config.format_error_limit:
            raise FormatErrorLimit(f"{self.format_errors} malformed replies")

    def _emit_reply(self, reply: ModelReply) -> None:
        calls = [{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
        self.on_event(
            {
                "type": "model_reply",
                "step": self.steps,
                "mode": reply.mode,
                "content": (reply.content or "")[:2000],
                "calls": calls,
                "cost_usd": reply.usage.cost_usd,
            }
        )

    def _emit_call(self, call: ToolCall, observation: str, *, error: bool) -> None:
        self.on_event(
            {
                "type": "tool_call",
                "step": self.steps,
                "name": call.name,
                "arguments": call.arguments,
                "observation": observation,
                "error": error,
            }
        )
