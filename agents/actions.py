"""Pure helpers that find tool calls in a model's text, for servers without native tools.

Not every OpenAI-compatible server carries ``tool_calls``: small llama.cpp models write the
call as JSON in their text, some servers only honour ``response_format``, and some honour
nothing. The model layer (:mod:`agents.model`) picks the transport; these functions only
parse and render, so they are unit-tested without a server.

Every parser returns a list of :class:`ToolCall` (empty when the text holds no usable
call) and never raises: a reply without a call is the agent's to report as a format error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from agents.protocols import ToolCall

ERROR_KEY = "__error__"  # arguments key that tells the agent the call's arguments were bad

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[^\n]*\n(.*?)```", re.DOTALL)
_JSON_START = re.compile(r"[{\[]")


# ---- arguments and single calls ---------------------------------------------------------


def decode_arguments(raw: Any) -> dict[str, Any]:
    """Arguments as a dict; undecodable ones become ``{"__error__": why}``.

    The error is kept inside the call (rather than dropping the call) so the agent can tell
    the model exactly what was wrong with the call it made.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            return {ERROR_KEY: f"arguments are not valid JSON ({err.msg} at char {err.pos})"}
        if isinstance(value, dict):
            return value
        return {ERROR_KEY: f"arguments must be a JSON object, not {type(value).__name__}"}
    return {ERROR_KEY: f"arguments must be a JSON object, not {type(raw).__name__}"}


def call_from_object(obj: Any, known: Iterable[str] = ()) -> ToolCall | None:
    """One call from the JSON shapes models use, or None when ``obj`` is not a call.

    Accepted: ``{"name", "arguments"}``, ``{"tool", "args"}`` (or ``arguments``/
    ``parameters``), and ``{"function": {"name", "arguments"}}`` (the OpenAI shape). A bare
    ``{"name": ...}`` counts only when the name is a known tool, so an ordinary JSON object
    with a ``name`` field in the text is not mistaken for a call.
    """
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):
        inner = call_from_object(obj["function"], known)
        if inner is not None and isinstance(obj.get("id"), str):
            inner.id = obj["id"]
        return inner
    name = obj.get("name", obj.get("tool"))
    if not isinstance(name, str) or not name:
        return None
    args_key = next((k for k in ("arguments", "args", "parameters", "input") if k in obj), None)
    if args_key is None and name not in set(known):
        return None
    raw = obj.get(args_key) if args_key else None
    return ToolCall(name=name, arguments=decode_arguments(raw), id=str(obj.get("id") or ""))


def calls_from_value(value: Any, known: Iterable[str] = ()) -> list[ToolCall]:
    """Calls from a decoded JSON value: one object, a list of them, or ``{"tool_calls": []}``."""
    known = list(known)
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    calls = [call_from_object(item, known) for item in items]
    if not calls or any(call is None for call in calls):
        return []
    return [call for call in calls if call is not None]


# ---- JSON in text (mode json-text) -----------------------------------------------------


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block in ``text`` as (language tag, body), in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def _bare_json_values(text: str) -> list[Any]:
    """JSON objects/lists found at any ``{`` or ``[`` in free text, outermost first."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while True:
        match = _JSON_START.search(text, pos)
        if match is None:
            return values
        try:
            value, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            pos = match.start() + 1
            continue
        values.append(value)
        pos = end


def parse_json_calls(text: str, known: Iterable[str] = ()) -> list[ToolCall]:
    """Tool calls written as JSON in ``text``: fenced ```json blocks first, then bare JSON.

    The first block (or bare value) that reads as calls wins, so prose around the call and
    unrelated JSON before it do not matter.
    """
    known = list(known)
    if not text:
        return []
    for lang, body in fenced_blocks(text):
        if lang not in ("", "json", "tool", "tool_call", "javascript", "js"):
            continue
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            continue
        calls = calls_from_value(value, known)
        if calls:
            return calls
    for value in _bare_json_values(text):
        calls = calls_from_value(value, known)
        if calls:
            return calls
    return []


# ---- response_format (mode response-format) -------------------------------------------


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    """The names of OpenAI tool schemas, in order."""
    return [tool_spec(tool)["name"] for tool in tools]


def tool_spec(tool: dict[str, Any]) -> dict[str, Any]:
    """The ``function`` part of an OpenAI tool schema (accepts the bare function too)."""
    spec = tool.get("function", tool)
    return spec if isinstance(spec, dict) else {}


def response_format_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``response_format`` that constrains the reply to ``{"name": TOOL, "arguments": {}}``."""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": tool_names(tools)},
            "arguments": {"type": "object"},
        },
        "required": ["name", "arguments"],
    }
    return {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": schema}}


def parse_response_format(content: str, known: Iterable[str] = ()) -> list[ToolCall]:
    """The call in a JSON-schema reply; other JSON call shapes in the text are accepted too."""
    known = list(known)
    try:
        calls = calls_from_value(json.loads(content), known)
    except (json.JSONDecodeError, TypeError):
        calls = []
    return calls or parse_json_calls(content or "", known)


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """The tools as text (name, description, JSON parameters) for a system message."""
    lines = []
    for tool in tools:
        spec = tool_spec(tool)
        params = json.dumps(spec.get("parameters", {}), sort_keys=True)
        lines.append(f"- {spec.get('name')}: {spec.get('description', '').strip()}")
        lines.append(f"  parameters (JSON schema): {params}")
    return "\n".join(lines)


def response_format_instructions(tools: list[dict[str, Any]]) -> str:
    """System text for the response-format mode: the tools, and the reply's JSON shape."""
    return (
        "You act by calling one tool per reply. Reply with a JSON object only: "
        '{"name": TOOL_NAME, "arguments": {...}}.\n'
        f"Tools:\n{describe_tools(tools)}"
    )


def json_text_instructions(tools: list[dict[str, Any]]) -> str:
    """System text for a fixed json-text mode: write the call as a ```json block."""
    return (
        "You act by calling tools. End each reply with exactly one fenced block:\n"
        '```json\n{"name": "TOOL_NAME", "arguments": {"arg": "value"}}\n```\n'
        f"Tools:\n{describe_tools(tools)}"
    )


# ---- plain text (mode text) --------------------------------------------------------------


def text_mode_instructions(tools: list[dict[str, Any]]) -> str:
    """System text for the plain-text mode: the tools and the ```action block format."""
    return (
        "You act by calling one tool per reply. End each reply with a fenced action block: "
        "the tool name on the first line, then its arguments as one JSON object (omit the "
        "JSON line when the tool takes no arguments):\n"
        '```action\nTOOL_NAME\n{"arg": "value"}\n```\n'
        f"Tools:\n{describe_tools(tools)}"
    )


def parse_action_block(text: str, known: Iterable[str] = ()) -> list[ToolCall]:
    """The call in the last ```action block of ``text``; else any JSON call in the text.

    The last block wins because a model may quote an example before its real action.
    """
    known = list(known)
    blocks = [body for lang, body in fenced_blocks(text or "") if lang == "action"]
    if blocks:
        call = _action_call(blocks[-1])
        if call is not None:
            return [call]
    return parse_json_calls(text or "", known)


def _action_call(body: str) -> ToolCall | None:
    """Name on the first non-empty line, optional JSON arguments on the rest."""
    lines = body.strip().splitlines()
    if not lines:
        return None
    name = lines[0].strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        return None
    rest = "\n".join(lines[1:]).strip()
    return ToolCall(name=name, arguments=decode_arguments(rest))
