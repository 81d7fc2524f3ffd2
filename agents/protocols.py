"""The agent's three protocols on one screen (as in mini-swe-agent): Model, Environment, Agent.

A **Model** turns a conversation plus tool schemas into one reply that names the tool calls
it wants; an **Environment** executes one tool call and returns an observation (a string);
the **Agent** loops between them until the model submits or a limit ends the loop, each end
a typed exception below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.errors import UserError

Message = dict[str, Any]  # an OpenAI chat message: {"role": ..., "content": ..., ...}


@dataclass
class ToolCall:
    """One action the model asked for: a tool name and its JSON arguments."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class ModelReply:
    """What the model said: free text, the tool calls parsed from it, and how they came.

    ``mode`` is how the calls were carried: ``tools`` (native ``tool_calls``), ``json-text``
    (a JSON block in the message text), ``response-format`` (a JSON-schema reply), or
    ``text`` (the plain-text action format).
    """

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    mode: str = "tools"
    usage: Usage = field(default_factory=Usage)
    message: Message = field(default_factory=dict)  # the assistant message to append


class Model(Protocol):
    name: str

    def query(self, messages: list[Message], tools: list[dict[str, Any]]) -> ModelReply:
        """One completion. Raises ModelError when the server cannot answer after retries."""
        ...


class Environment(Protocol):
    def tools(self) -> list[dict[str, Any]]:
        """The OpenAI tool schemas this environment executes."""
        ...

    def execute(self, call: ToolCall) -> str:
        """Run one tool call; raise Submitted on `submit`, ToolError on a bad call."""
        ...

    def diff(self) -> str:
        """The private copy's changes against the base, as a unified diff."""
        ...


class Agent(Protocol):
    def run(self, task: str, **context: Any) -> AgentResult: ...


@dataclass
class AgentResult:
    exit: str  # "submitted" or the name of the limit that ended the loop
    patch: str
    steps: int
    cost_usd: float
    message: str = ""


# ---- errors and typed exits ------------------------------------------------------------


class ModelError(UserError):
    """The model server could not be used (no key, unreachable, refused after retries)."""


class FormatError(Exception):
    """The model's reply names no usable action; the message says what was expected."""


class ToolError(Exception):
    """A tool call that cannot be carried out (unknown tool, bad arguments, edit not found)."""


class AgentExit(Exception):
    """Ends the agent loop; the subclass names why."""

    reason = "exit"


class Submitted(AgentExit):
    reason = "submitted"


class StepLimit(AgentExit):
    reason = "step limit"


class CostLimit(AgentExit):
    reason = "cost limit"


class FormatErrorLimit(AgentExit):
    reason = "too many malformed replies"
