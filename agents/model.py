"""The Model protocol over any OpenAI-compatible chat-completions server.

One class, :class:`OpenAIModel`, talks to OpenAI, vLLM, Ollama, llama.cpp's server or
LiteLLM through the official ``openai`` client. Two things vary between those servers and
are handled here, so that the agent sees one behaviour:

* **Failures.** The client's own retries are off (``max_retries=0``) so every retry is
  visible: 429 (honouring Retry-After), 5xx, timeouts and connection errors are retried with
  exponential backoff and jitter, each retry announced through ``warn``; a bad key or an
  unknown model fails at once with a :class:`ModelError` that says what to fix.
* **How tool calls travel.** In ``auto`` mode the model first gets native ``tools``; calls
  written as JSON in the text are accepted too (``json-text``). A server that refuses or
  ignores tools is switched to a JSON-schema ``response_format``, and one that refuses that
  too to a plain-text ``action`` block (``text``). A switch sticks for later queries.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents import actions
from agents.config import ModelConfig, require_endpoint
from agents.pricing import Pricing
from agents.protocols import Message, ModelError, ModelReply, ToolCall, Usage

if TYPE_CHECKING:  # imported where a client is made: 0.4 s of every command's start-up
    import openai

RETRY_AFTER_CAP_S = 60.0  # a server asking for longer waits is treated as asking for this
FALLBACK = {"tools": "response-format", "response-format": "text"}  # the auto-mode ladder
REFUSAL_STATUSES = (400, 422, 501)  # "I do not support this request shape"
RETRY_STATUSES = (408, 409, 429)  # plus every 5xx except 501
OVERFLOW_WORDS = ("context length", "context window", "maximum context", "too many tokens")
#: A 5xx whose message names the request's shape is a refusal, not an outage.
SHAPE_WORDS = ("response_format", "json_schema", "tool_choice", "input should be")
IGNORED_LIMIT = 2  # tools-mode replies without any call, in a row, before switching


class _Refused(Exception):
    """The server rejected the request's shape (400/422/501): maybe a mode to fall back from."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text


class OpenAIModel:
    """A :class:`~agents.protocols.Model` backed by one OpenAI-compatible endpoint.

    Attributes: ``name`` (the model), ``mode`` (the transport now in use), ``cost_usd``,
    ``calls`` and ``tokens`` (cumulative over this instance's queries).
    """

    def __init__(self, config: ModelConfig, warn: Callable[[str], None] | None = None) -> None:
        self.config = require_endpoint(config)
        self.name = config.model
        self.auto = config.mode == "auto"
        self.mode = "tools" if self.auto else config.mode
        self.cost_usd = 0.0
        self.calls = 0
        self.tokens = 0
        self.warn: Callable[[str], None] = warn or (lambda _message: None)
        self.pricing = Pricing(config.prices, self.warn)
        self.base_url = self.config.base_url or "https://api.openai.com/v1"
        import openai

        self.client = openai.OpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key,
            timeout=self.config.timeout_s,
            max_retries=0,
        )
        self._ignored = 0  # consecutive tools-mode replies with no call at all
        self._confirmed = False  # the current mode has had one accepted request
        self._native_seen = False  # the server has returned native tool_calls at least once
        self._schema_variant = "json_schema"  # then llama.cpp's json_object + schema

    # ---- the protocol ------------------------------------------------------------------

    def query(self, messages: list[Message], tools: list[dict[str, Any]]) -> ModelReply:
        """One reply, its calls parsed in the current mode; falls back (auto) when refused.

        A reply without a usable call has ``tool_calls == []``; this never raises
        FormatError, since deciding what a malformed reply costs is the agent's job.
        """
        while True:
            try:
                reply = self._query_once(messages, tools)
            except _Refused as refusal:
                if not self._fall_back_from_refusal(refusal, bool(tools)):
                    raise self._refusal_error(refusal) from None
                continue
            if self._ignored_too_often(reply, tools):
                continue
            return reply

    # ---- one request in the current mode -------------------------------------------------

    def _query_once(self, messages: list[Message], tools: list[dict[str, Any]]) -> ModelReply:
        """Send one request shaped for ``self.mode`` and parse its reply in that mode."""
        completion = self._create(self._request(messages, tools))
        self._confirmed = True
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list):
            raise ModelError(
                f"the model server at {self.base_url} answered with something that is not a "
                "chat completion",
                "point --base-url at an OpenAI-compatible /v1 endpoint",
            )
        usage = self._count(getattr(completion, "usage", None))
        message = choices[0].message if choices else None
        content = (getattr(message, "content", None) or "") if message else ""
        native = (getattr(message, "tool_calls", None) or []) if message else []
        return self._parse(content, native, tools, usage)

    def _request(self, messages: list[Message], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The create() arguments for the current mode."""
        request: dict[str, Any] = {"model": self.name, "temperature": self.config.temperature}
        if self.config.seed is not None:
            request["seed"] = self.config.seed
        if self.config.max_tokens is not None:
            request["max_tokens"] = self.config.max_tokens
        if self.mode == "tools":
            request["messages"] = messages
            if tools:
                request["tools"] = tools
                request["tool_choice"] = "auto"
            return request
        instructions = {
            "json-text": actions.json_text_instructions,
            "response-format": actions.response_format_instructions,
            "text": actions.text_mode_instructions,
        }[self.mode](tools)
        request["messages"] = with_system_text(plain_messages(messages), instructions)
        if self.mode == "response-format" and tools:
            fmt = actions.response_format_schema(tools)
            if self._schema_variant == "json_object":
                fmt = {"type": "json_object", "schema": fmt["json_schema"]["schema"]}
            request["response_format"] = fmt
        return request

    def _parse(
        self, content: str, native: list[Any], tools: list[dict[str, Any]], usage: Usage
    ) -> ModelReply:
        """Calls from the reply in the current mode, and the assistant message to keep."""
        known = actions.tool_names(tools)
        if self.mode == "tools":
            wires = [raw for raw in native if getattr(raw, "function", None) is not None]
            if wires:
                calls = [self._native_call(raw, i) for i, raw in enumerate(wires)]
                # "" rather than None: llama.cpp's server answers the next request with a 500
                # when an assistant message's content is null
                message: Message = {"role": "assistant", "content": content}
                message["tool_calls"] = [
                    _wire_call(raw, call) for raw, call in zip(wires, calls, strict=True)
                ]
                self._native_seen = True
                return ModelReply(content, calls, "tools", usage, message)
            calls = actions.parse_json_calls(content, known)
            mode = "json-text" if calls else "tools"
        elif self.mode == "json-text":
            calls, mode = actions.parse_json_calls(content, known), "json-text"
        elif self.mode == "response-format":
            calls, mode = actions.parse_response_format(content, known), "response-format"
        else:
            calls, mode = actions.parse_action_block(content, known), "text"
        for i, call in enumerate(calls):
            call.id = call.id or f"call_{self.calls}_{i}"
        return ModelReply(content, calls, mode, usage, {"role": "assistant", "content": content})

    def _native_call(self, raw: Any, index: int) -> ToolCall:
        """A native tool call; undecodable arguments become ``{"__error__": ...}``."""
        function = raw.function
        return ToolCall(
            name=function.name or "",
            arguments=actions.decode_arguments(function.arguments),
            id=raw.id or f"call_{self.calls}_{index}",
        )

    def _count(self, raw_usage: Any) -> Usage:
        """Add this reply's tokens and cost to the totals; a missing usage counts 0."""
        usage = Usage(
            prompt_tokens=int(getattr(raw_usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(raw_usage, "completion_tokens", 0) or 0),
        )
        usage.cost_usd = self.pricing.cost(self.name, usage)
        self.calls += 1
        self.tokens += usage.prompt_tokens + usage.completion_tokens
        self.cost_usd += usage.cost_usd
        return usage

    # ---- the auto-mode ladder ------------------------------------------------------------

    def _fall_back_from_refusal(self, refusal: _Refused, sent_tools: bool) -> bool:
        """Switch to the next mode when the server refused this mode's request shape."""
        nxt = FALLBACK.get(self.mode)
        if not self.auto or nxt is None or not sent_tools:
            return False
        text = refusal.text.lower()
        if any(word in text for word in OVERFLOW_WORDS):
            return False  # e.g. "maximum context length ... in the functions": not a refusal
        words = ("tool", "function") if self.mode == "tools" else ("response_format", "schema")
        named = refusal.status in (400, 500) and any(word in text for word in words)
        if not (named or (refusal.status in REFUSAL_STATUSES and not self._confirmed)):
            return False
        if self.mode == "response-format" and self._schema_variant == "json_schema":
            # llama.cpp refuses OpenAI's json_schema but honours {"type": "json_object",
            # "schema": ...}; try that before giving up on constrained replies
            self._schema_variant = "json_object"
            self.warn(f"model server: refused json_schema ({refusal}); trying json_object+schema")
            return True
        self._switch(nxt, f"the server refused {self.mode} ({refusal})")
        return True

    def _ignored_too_often(self, reply: ModelReply, tools: list[dict[str, Any]]) -> bool:
        """True (and switched) when tools-mode replies carried no call twice in a row.

        Only before the first native call: a server that has returned ``tool_calls`` supports
        tools, so a later reply without one is the model's format error, not the server's.
        """
        if not (self.auto and self.mode == "tools" and tools) or self._native_seen:
            return False
        self._ignored = 0 if reply.tool_calls else self._ignored + 1
        if self._ignored < IGNORED_LIMIT:
            return False
        self._switch("response-format", f"{IGNORED_LIMIT} replies in a row ignored the tools")
        return True

    def _switch(self, mode: str, why: str) -> None:
        """Move to ``mode`` for this and every later query, and say so once."""
        self.warn(f"model server: {why}; switching to {mode} mode")
        self.mode = mode
        self._confirmed = False
        self._ignored = 0

    def _refusal_error(self, refusal: _Refused) -> ModelError:
        return ModelError(
            f"the model server at {self.base_url} rejected the request: {refusal}",
            'check --model and the server\'s options, or set mode (e.g. mode = "text") in '
            "[tool.optimizer.model]",
        )

    # ---- one HTTP call with retries ------------------------------------------------------

    def _create(self, request: dict[str, Any]) -> Any:
        """``chat.completions.create`` with this layer's retries (the client's are off)."""
        import openai

        retries = self.config.max_retries
        for attempt in range(retries + 1):
            try:
                return self.client.chat.completions.create(**request)
            except openai.APIStatusError as err:
                failure, wait = self._status_failure(err)
            except openai.APITimeoutError:
                failure, wait = f"no answer within {self.config.timeout_s:g} s", None
            except openai.APIConnectionError as err:
                failure, wait = f"cannot connect ({_cause(err)})", None
            except openai.APIError as err:
                raise ModelError(
                    f"the model server at {self.base_url} sent an unreadable reply: "
                    f"{one_line(str(err))}",
                    "point --base-url at an OpenAI-compatible /v1 endpoint",
                ) from err
            if attempt == retries:
                raise ModelError(
                    f"the model server at {self.base_url} failed {retries + 1} time(s), "
                    f"last with: {failure}",
                    "check that the server is up and serves the model, or try again later "
                    "(max_retries and timeout_s in [tool.optimizer.model] set the patience)",
                )
            delay = wait if wait is not None else self._backoff(attempt)
            self.warn(
                f"model server: {failure}, retry {attempt + 1}/{retries} in {seconds(delay)} s"
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _status_failure(self, err: openai.APIStatusError) -> tuple[str, float | None]:
        """A retryable HTTP error as (description, server-requested wait); else raise."""
        status, text = err.status_code, error_text(err)
        if status in (401, 403):
            raise ModelError(
                f"the model server at {self.base_url} rejected the API key ({status} {text})",
                "set a valid key in OPENAI_API_KEY or OPTIMIZER_API_KEY (or name its variable "
                "with api_key_env in [tool.optimizer.model])",
            ) from None
        if status == 404:
            raise ModelError(
                f"the model server at {self.base_url} has no model {self.name!r} or no "
                f"chat-completions route (404 {text})",
                "pass --model with a model the server lists at GET /v1/models, and a "
                "--base-url ending in /v1",
            ) from None
        if status >= 500 and any(word in text.lower() for word in SHAPE_WORDS):
            raise _Refused(status, text) from None  # llama.cpp refuses json_schema with a 500
        if status in RETRY_STATUSES or (status >= 500 and status != 501):
            return f"{status} {text}", retry_after(err.response.headers)
        raise _Refused(status, text) from None

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with up to 25% jitter, so parallel agents do not retry in step."""
        return self.config.backoff_s * (2**attempt) * (1 + 0.25 * random.random())


# ---- conversation helpers ----------------------------------------------------------------


def tool_result_message(call: ToolCall, output: str, mode: str) -> Message:
    """The message carrying a tool's output back: ``role: tool`` only in native tools mode.

    Other modes have no tool_call_id to answer, so the output is a user message instead.
    """
    if mode == "tools":
        return {"role": "tool", "tool_call_id": call.id, "content": output}
    return {"role": "user", "content": f"Observation of {call.name}:\n{output}"}


def plain_messages(messages: list[Message]) -> list[Message]:
    """The conversation without native tool messages, for requests that send no tools.

    A mode switch can happen mid-conversation; servers that reject ``tools`` usually reject
    ``tool_calls`` and ``role: tool`` in the history too, so those become plain text.
    """
    names: dict[str, str] = {}
    out: list[Message] = []
    for message in messages:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls = [c.get("function", {}) for c in message["tool_calls"]]
            for wire, fn in zip(message["tool_calls"], calls, strict=True):
                names[wire.get("id", "")] = fn.get("name", "")
            shown = [{"name": fn.get("name"), "arguments": fn.get("arguments")} for fn in calls]
            text = (message.get("content") or "").strip()
            block = "```json\n" + json.dumps(shown if len(shown) > 1 else shown[0]) + "\n```"
            out.append({"role": "assistant", "content": f"{text}\n{block}".strip()})
        elif message.get("role") == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            out.append({"role": "user", "content": f"Observation of {name}:\n{message['content']}"})
        else:
            out.append(message)
    return out


def with_system_text(messages: list[Message], text: str) -> list[Message]:
    """``text`` appended to the leading system message (or a new one): many chat templates
    accept only one system message, and only first."""
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0].get('content') or ''}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


# ---- small pure helpers ------------------------------------------------------------------


def retry_after(headers: Any) -> float | None:
    """The wait a 429/503 asks for (retry-after-ms, or Retry-After seconds or date), capped."""
    try:
        if headers.get("retry-after-ms"):
            return _capped(float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
    except (TypeError, ValueError, AttributeError):
        return None
    if not value:
        return None
    try:
        return _capped(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _capped(when.timestamp() - time.time())


def _capped(wait: float) -> float:
    return min(max(wait, 0.0), RETRY_AFTER_CAP_S)


def seconds(value: float) -> str:
    """A wait for people: one decimal, more only when it would print as 0.0."""
    return f"{value:.1f}" if value >= 0.1 or value == 0 else f"{value:.3f}"


def error_text(err: openai.APIStatusError) -> str:
    """The server's own words for an HTTP error, on one short line."""
    body = err.body
    if isinstance(body, dict):
        text = body.get("message") or json.dumps(body)
    elif isinstance(body, str) and body:
        text = body
    else:
        text = err.message
    return one_line(str(text))


def one_line(text: str, limit: int = 200) -> str:
    """Whitespace collapsed and cut, since ModelError prints as a single line."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(err: Exception) -> str:
    """The innermost reason of a connection error (refused, DNS...), on one line."""
    inner: BaseException = err
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return one_line(str(inner) or type(inner).__name__, 120)


def _wire_call(raw: Any, call: ToolCall) -> dict[str, Any]:
    """A native call in OpenAI wire form, with its raw argument text kept as sent."""
    arguments = raw.function.arguments
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments or {})
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }
