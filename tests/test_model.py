"""The model layer through the real openai client, against a scripted HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from agents import actions
from agents.config import ModelConfig, require_endpoint, resolve_model_config
from agents.model import OpenAIModel, retry_after, tool_result_message
from agents.pricing import Pricing, lookup
from agents.protocols import ModelError, ModelReply, ToolCall, Usage
from agents.replay import (
    RecordingModel,
    ReplayModel,
    reply_from_json,
    reply_to_json,
    request_sha,
)
from tests.chat_server import ScriptedServer, call, delay, error, raw_call, reply


def tool(name: str, description: str = "", **properties: str) -> dict[str, Any]:
    """An OpenAI tool schema with string parameters."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description or f"the {name} tool",
            "parameters": {
                "type": "object",
                "properties": {p: {"type": kind} for p, kind in properties.items()},
            },
        },
    }


TOOLS = [
    tool("edit", "Replace text in a file", path="string", search="string", replace="string"),
    tool("submit", "Finish"),
]
MESSAGES = [
    {"role": "system", "content": "You make code faster."},
    {"role": "user", "content": "Speed up a.py"},
]


def make_model(srv: ScriptedServer, warnings: list[str] | None = None, **cfg: Any) -> OpenAIModel:
    """A model on the scripted server, with retries that take milliseconds."""
    settings: dict[str, Any] = {
        "base_url": srv.base_url,
        "api_key": "test-key",
        "backoff_s": 0.001,
        "model": "gpt-4o",
    }
    settings.update(cfg)
    sink = warnings.append if warnings is not None else None
    return OpenAIModel(ModelConfig(**settings), warn=sink)


def system_text(request: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in request["messages"] if m["role"] == "system")


# ---- native tools, retries and errors ---------------------------------------------------


def test_native_tool_calls_are_parsed_and_the_message_is_wire_ready() -> None:
    calls = [call("edit", path="a.py", search="x", replace="y"), call("submit")]
    with ScriptedServer([reply("editing", calls)]) as srv:
        model = make_model(srv)
        got = model.query(MESSAGES, TOOLS)
    assert got.mode == "tools" and model.mode == "tools"
    assert [(c.name, c.arguments) for c in got.tool_calls] == [
        ("edit", {"path": "a.py", "search": "x", "replace": "y"}),
        ("submit", {}),
    ]
    assert got.tool_calls[0].id == "call_1_0"
    wire = got.message["tool_calls"]
    assert got.message["role"] == "assistant" and [w["id"] for w in wire] == [
        "call_1_0",
        "call_1_1",
    ]
    assert json.loads(wire[0]["function"]["arguments"])["path"] == "a.py"
    sent = srv.requests[0]
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert sent["model"] == "gpt-4o" and sent["temperature"] == 0.0
    result = tool_result_message(got.tool_calls[0], "done", got.mode)
    assert result == {"role": "tool", "tool_call_id": "call_1_0", "content": "done"}


def test_undecodable_arguments_become_an_error_the_agent_can_report() -> None:
    with ScriptedServer([reply(calls=[raw_call("edit", '{"path": "a.py",')])]) as srv:
        got = make_model(srv).query(MESSAGES, TOOLS)
    assert got.tool_calls[0].name == "edit"
    assert "not valid JSON" in got.tool_calls[0].arguments[actions.ERROR_KEY]


def test_server_errors_are_retried_with_a_warning_each() -> None:
    warnings: list[str] = []
    script = [error(500, "boom"), error(502), reply(calls=[call("submit")])]
    with ScriptedServer(script) as srv:
        model = make_model(srv, warnings)
        got = model.query(MESSAGES, TOOLS)
        assert len(srv.requests) == 3
    assert [c.name for c in got.tool_calls] == ["submit"]
    assert len(warnings) == 2
    assert warnings[0].startswith("model server: 500 boom, retry 1/4 in ")
    assert "502" in warnings[1] and "retry 2/4" in warnings[1]
    assert model.calls == 1


def test_rate_limit_honours_retry_after() -> None:
    warnings: list[str] = []
    script = [error(429, "slow down", headers={"Retry-After": "0.3"}), reply("fine")]
    with ScriptedServer(script) as srv:
        start = time.monotonic()
        got = make_model(srv, warnings).query(MESSAGES, TOOLS)
        elapsed = time.monotonic() - start
    assert got.content == "fine"
    assert elapsed >= 0.3
    assert warnings == ["model server: 429 slow down, retry 1/4 in 0.3 s"]


def test_retry_after_is_parsed_and_capped() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "86400"}) == 60.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({}) is None


def test_exhausted_retries_raise_one_line_model_error() -> None:
    warnings: list[str] = []
    with ScriptedServer([error(503, "overloaded\nplease wait")] * 5) as srv:
        with pytest.raises(ModelError) as caught:
            make_model(srv, warnings, max_retries=2).query(MESSAGES, TOOLS)
        assert len(srv.requests) == 3
    line = str(caught.value)
    assert "\n" not in line
    assert "failed 3 time(s), last with: 503 overloaded please wait" in line
    assert "Fix:" in line and caught.value.fix
    assert len(warnings) == 2


def test_client_timeout_is_retried() -> None:
    warnings: list[str] = []
    script = [delay(1.5, then=reply("too late")), reply(calls=[call("submit")])]
    with ScriptedServer(script) as srv:
        got = make_model(srv, warnings, timeout_s=0.3).query(MESSAGES, TOOLS)
    assert [c.name for c in got.tool_calls] == ["submit"]
    assert warnings and warnings[0].startswith("model server: no answer within 0.3 s, retry 1/4")


def test_unreachable_server_names_the_connection_failure() -> None:
    srv = ScriptedServer()
    base_url = srv.base_url
    srv.stop()  # the port is now closed: connection refused
    config = ModelConfig(base_url=base_url, max_retries=1, backoff_s=0.001)
    with pytest.raises(ModelError, match="cannot connect"):
        OpenAIModel(config).query(MESSAGES, TOOLS)


def test_bad_key_fails_at_once() -> None:
    warnings: list[str] = []
    with ScriptedServer([reply("never")], require_key="right-key") as srv:
        with pytest.raises(ModelError, match="rejected the API key") as caught:
            make_model(srv, warnings, api_key="wrong-key").query(MESSAGES, TOOLS)
        assert len(srv.requests) == 1
    assert "OPENAI_API_KEY" in caught.value.fix
    assert warnings == []


def test_unknown_model_fails_at_once() -> None:
    with ScriptedServer([error(404, "model 'nope' not found")] * 3) as srv:
        with pytest.raises(ModelError, match="has no model 'nope'") as caught:
            make_model(srv, model="nope").query(MESSAGES, TOOLS)
        assert len(srv.requests) == 1
    assert "--model" in caught.value.fix


def test_local_server_without_key_gets_key_none() -> None:
    with ScriptedServer([reply("hello")], require_key="none") as srv:
        got = OpenAIModel(ModelConfig(base_url=srv.base_url)).query(MESSAGES, TOOLS)
    assert got.content == "hello"


# ---- the auto-mode ladder ------------------------------------------------------------------


def test_refused_tools_switch_to_response_format_and_stay() -> None:
    warnings: list[str] = []
    script = [reply(calls=[call("edit", path="a.py")]), reply(calls=[call("submit")])]
    with ScriptedServer(script, refuse_tools=True) as srv:
        model = make_model(srv, warnings)
        first = model.query(MESSAGES, TOOLS)
        second = model.query(MESSAGES, TOOLS)
    assert (first.mode, second.mode, model.mode) == ("response-format",) * 3
    assert first.tool_calls[0].name == "edit" and first.tool_calls[0].arguments == {"path": "a.py"}
    assert second.tool_calls[0].name == "submit"
    assert "tools" in srv.requests[0]
    assert len(srv.requests) == 3  # the switch is not retried on the second query
    for sent in srv.requests[1:]:
        assert "tools" not in sent and "tool_choice" not in sent
        schema = sent["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["name"]["enum"] == ["edit", "submit"]
        assert "Replace text in a file" in system_text(sent)
        assert [m["role"] for m in sent["messages"]].count("system") == 1
    assert first.message == {"role": "assistant", "content": first.content}
    assert any("switching to response-format mode" in w for w in warnings)


def test_refused_response_format_switches_to_text_mode() -> None:
    script = [
        reply("I will finish.", calls=[call("submit")]),
        reply(calls=[call("edit", path="b")]),
    ]
    with ScriptedServer(script, refuse_tools=True, refuse_response_format=True) as srv:
        model = make_model(srv)
        first = model.query(MESSAGES, TOOLS)
        second = model.query(MESSAGES, TOOLS)
    assert (first.mode, second.mode, model.mode) == ("text", "text", "text")
    assert [c.name for c in first.tool_calls] == ["submit"]
    assert second.tool_calls[0].arguments == {"path": "b"}
    assert ["tools" in r for r in srv.requests] == [True, False, False, False, False]
    formats = [r.get("response_format", {}).get("type") for r in srv.requests]
    assert formats == [None, "json_schema", "json_object", None, None]  # llama.cpp's variant
    assert "schema" in srv.requests[2]["response_format"]
    assert "```action" in system_text(srv.requests[3])
    call_ = first.tool_calls[0]
    observation = tool_result_message(call_, "ok", first.mode)
    assert observation == {"role": "user", "content": "Observation of submit:\nok"}


def test_a_fixed_mode_never_switches() -> None:
    with ScriptedServer([reply("x")], refuse_tools=True) as srv:
        model = make_model(srv, mode="tools")
        with pytest.raises(ModelError, match="rejected the request: 400 tools are not supported"):
            model.query(MESSAGES, TOOLS)
        assert model.mode == "tools" and len(srv.requests) == 1


def test_context_overflow_is_not_mistaken_for_refused_tools() -> None:
    overflow = "maximum context length is 8192 tokens (including 300 in the functions)"
    with ScriptedServer([error(400, overflow)]) as srv:
        model = make_model(srv)
        with pytest.raises(ModelError, match="maximum context length"):
            model.query(MESSAGES, TOOLS)
    assert model.mode == "tools" and len(srv.requests) == 1


def test_switch_mid_conversation_rewrites_native_tool_messages() -> None:
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "edit", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "edited"},
    ]
    with ScriptedServer([reply(calls=[call("submit")])], refuse_tools=True) as srv:
        got = make_model(srv).query(history, TOOLS)
    assert got.tool_calls[0].name == "submit"
    sent = srv.requests[1]["messages"]
    assert all(m["role"] != "tool" and "tool_calls" not in m for m in sent)
    assert sent[-1] == {"role": "user", "content": "Observation of edit:\nedited"}
    assert '"name": "edit"' in sent[-2]["content"]


def test_json_call_in_the_text_is_accepted_as_json_text() -> None:
    script = [reply("Let me edit.", calls=[call("edit", path="a.py")], as_text_json=True)]
    with ScriptedServer(script) as srv:
        model = make_model(srv)
        got = model.query(MESSAGES, TOOLS)
    assert got.mode == "json-text"
    assert [(c.name, c.arguments) for c in got.tool_calls] == [("edit", {"path": "a.py"})]
    assert "tool_calls" not in got.message and "```json" in got.message["content"]
    assert tool_result_message(got.tool_calls[0], "ok", got.mode)["role"] == "user"


def test_tools_ignored_twice_switch_to_response_format() -> None:
    warnings: list[str] = []
    script = [
        reply("Sure, editing now.", calls=[call("edit", path="a")]),
        reply("Still thinking.", calls=[call("edit", path="a")]),
        reply(calls=[call("edit", path="a")]),
    ]
    with ScriptedServer(script, ignore_tools=True) as srv:
        model = make_model(srv, warnings)
        first = model.query(MESSAGES, TOOLS)
        second = model.query(MESSAGES, TOOLS)
    assert first.tool_calls == [] and first.mode == "tools"
    assert second.mode == "response-format" and second.tool_calls[0].arguments == {"path": "a"}
    assert [("response_format" in r) for r in srv.requests] == [False, False, True]
    assert any("2 replies in a row ignored the tools" in w for w in warnings)


def test_plain_text_action_block_is_parsed_in_text_mode() -> None:
    content = "Example:\n```action\nedit\n{}\n```\nNow for real:\n```action\nsubmit\n```"
    with ScriptedServer([reply(content), reply("no action here")]) as srv:
        model = make_model(srv, mode="text")
        got = model.query(MESSAGES, TOOLS)
        none = model.query(MESSAGES, TOOLS)
    assert [(c.name, c.arguments) for c in got.tool_calls] == [("submit", {})]
    assert got.mode == "text" and none.tool_calls == [] and none.mode == "text"
    assert "tools" not in srv.requests[0] and "response_format" not in srv.requests[0]


# ---- usage and cost ------------------------------------------------------------------------


def test_cost_is_counted_from_usage_with_prices() -> None:
    submit = [call("submit")]
    script = [reply("a", submit, usage=(1000, 500)), reply("b", submit, usage=(3000, 0))]
    with ScriptedServer(script) as srv:
        model = make_model(srv, model="gpt-4o")
        first = model.query(MESSAGES, TOOLS)
        model.query(MESSAGES, TOOLS)
    assert first.usage.prompt_tokens == 1000 and first.usage.completion_tokens == 500
    assert first.usage.cost_usd == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1e6)
    assert model.cost_usd == pytest.approx((4000 * 2.5 + 500 * 10.0) / 1e6)
    assert (model.calls, model.tokens) == (2, 4500)


def test_price_override_file_prices_a_local_model(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."my-llm"]\ninput = 1.0\noutput = 2.0\n')
    with ScriptedServer([reply("a", usage=(1_000_000, 1_000_000))]) as srv:
        model = make_model(srv, model="my-llm", prices=prices)
        model.query(MESSAGES, TOOLS)
    assert model.cost_usd == pytest.approx(3.0)


def test_unknown_model_costs_nothing_and_warns_once() -> None:
    warnings: list[str] = []
    submit = [call("submit")]
    script = [reply("a", submit), reply("b", submit, usage=None), reply("c", submit)]
    with ScriptedServer(script) as srv:
        model = make_model(srv, warnings, model="mystery-model")
        replies = [model.query(MESSAGES, TOOLS) for _ in range(3)]
    assert model.cost_usd == 0.0
    assert [w for w in warnings if "mystery-model" in w] == warnings and len(warnings) == 1
    assert replies[1].usage == Usage(0, 0, 0.0)
    assert model.tokens == 240


def test_dated_and_prefixed_names_find_their_price() -> None:
    table = Pricing().table
    assert lookup(table, "gpt-4o-mini-2024-07-18") == table["gpt-4o-mini"]
    assert lookup(table, "openai/gpt-4o") == table["gpt-4o"]
    assert lookup(table, "llama3") is None


# ---- configuration -----------------------------------------------------------------------


ENV_NAMES = (
    "OPTIMIZER_MODEL",
    "OPTIMIZER_BASE_URL",
    "OPTIMIZER_API_KEY",
    "OPENAI_MODEL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "PROJECT_KEY",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def write_pyproject(root: Path, body: str) -> None:
    (root / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.optimizer.model]\n{body}")


def test_config_precedence_flags_env_file_defaults(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert resolve_model_config(tmp_path) == ModelConfig()
    write_pyproject(
        tmp_path, 'model = "file-model"\nbase_url = "http://file/v1"\ntemperature = 0.5\n'
    )
    cfg = resolve_model_config(tmp_path)
    assert (cfg.model, cfg.base_url, cfg.temperature) == ("file-model", "http://file/v1", 0.5)
    clean_env.setenv("OPENAI_MODEL", "openai-env-model")
    assert resolve_model_config(tmp_path).model == "openai-env-model"
    clean_env.setenv("OPTIMIZER_MODEL", "env-model")
    clean_env.setenv("OPENAI_BASE_URL", "http://env/v1")
    cfg = resolve_model_config(tmp_path)
    assert (cfg.model, cfg.base_url, cfg.temperature) == ("env-model", "http://env/v1", 0.5)
    cfg = resolve_model_config(tmp_path, model="flag-model", base_url=None, seed=7)
    assert (cfg.model, cfg.base_url, cfg.seed) == ("flag-model", "http://env/v1", 7)
    assert resolve_model_config(None).model == "env-model"  # no project file read


def test_optimizer_toml_and_api_key_env(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'model = "py-model"\nmax_retries = 1\n')
    (tmp_path / "optimizer.toml").write_text(
        '[model]\nmodel = "opt-model"\napi_key_env = "PROJECT_KEY"\nprices = "p.toml"\n'
    )
    clean_env.setenv("OPENAI_API_KEY", "generic-key")
    clean_env.setenv("PROJECT_KEY", "project-key")
    cfg = resolve_model_config(tmp_path)
    assert (cfg.model, cfg.max_retries, cfg.api_key) == ("opt-model", 1, "project-key")
    assert cfg.prices == (tmp_path / "p.toml").resolve()
    clean_env.setenv("OPTIMIZER_API_KEY", "optimizer-key")
    assert resolve_model_config(tmp_path).api_key == "optimizer-key"
    assert resolve_model_config(tmp_path, api_key="flag-key").api_key == "flag-key"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("model = ", "pyproject.toml is not valid TOML"),
        ('modle = "x"\n', "unknown key 'modle' in [tool.optimizer.model]"),
        ('timeout_s = "soon"\n', "bad model setting timeout_s in "),
        ('mode = "psychic"\n', "bad model setting mode in "),
    ],
)
def test_bad_config_file_names_file_and_key(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, body: str, expected: str
) -> None:
    write_pyproject(tmp_path, body)
    with pytest.raises(ModelError) as caught:
        resolve_model_config(tmp_path)
    assert expected in str(caught.value) and str(tmp_path / "pyproject.toml") in str(caught.value)
    assert caught.value.fix and "\n" not in str(caught.value)


def test_no_key_and_no_base_url_says_how_to_configure(clean_env: pytest.MonkeyPatch) -> None:
    cfg = resolve_model_config(None)
    with pytest.raises(ModelError) as caught:
        require_endpoint(cfg)
    assert caught.value.problem == "no model is configured"
    assert "OPTIMIZER_BASE_URL" in caught.value.fix and "--candidate PATCH" in caught.value.fix
    with pytest.raises(ModelError, match="no model is configured"):
        OpenAIModel(cfg)
    assert require_endpoint(cfg.model_copy(update={"base_url": "http://x/v1"})).api_key == "none"
    assert require_endpoint(cfg.model_copy(update={"api_key": "k"})).api_key == "k"


# ---- record and replay ---------------------------------------------------------------------


def record_session(records: list[dict[str, Any]]) -> tuple[list[ModelReply], int]:
    """Two live queries on a scripted server, recorded; returns the replies and requests."""
    script = [reply("first", calls=[call("edit", path="a.py")]), reply("done", [call("submit")])]
    with ScriptedServer(script) as srv:
        recorder = RecordingModel(make_model(srv), "main", records.append)
        replies = [recorder.query(MESSAGES, TOOLS), recorder.query(MESSAGES[:1], TOOLS)]
        assert recorder.cost_usd > 0 and recorder.name == "gpt-4o"
        return replies, len(srv.requests)


def test_record_then_replay_without_a_server() -> None:
    records: list[dict[str, Any]] = []
    live, requests = record_session(records)
    assert requests == 2
    assert [(r["thread"], r["step"]) for r in records] == [("main", 0), ("main", 1)]
    assert records[0]["request_sha"] == request_sha(MESSAGES, TOOLS)
    stored = json.loads(json.dumps(records))  # as written to and read from a JSONL file
    replay = ReplayModel(stored, "main")
    replayed = [replay.query(MESSAGES, TOOLS), replay.query(MESSAGES, TOOLS)]
    assert replayed == live
    assert replay.replayed == 2 and replay.cost_usd == 0.0
    assert replay.diverged == [1]  # the second request differs from the recording


def test_replay_exhausted_is_a_model_error() -> None:
    records: list[dict[str, Any]] = []
    record_session(records)
    replay = ReplayModel(records, "main")
    replay.query(MESSAGES, TOOLS)
    replay.query(MESSAGES, TOOLS)
    with pytest.raises(ModelError) as caught:
        replay.query(MESSAGES, TOOLS)
    assert caught.value.problem == "the recording has no reply for step 2 of thread main"
    assert "without --replay" in caught.value.fix
    with pytest.raises(ModelError, match="step 0 of thread other"):
        ReplayModel(records, "other").query(MESSAGES, TOOLS)


def test_replay_with_fallback_continues_live() -> None:
    records: list[dict[str, Any]] = []
    record_session(records)
    with ScriptedServer([reply("live", calls=[call("submit")], usage=(1000, 0))]) as srv:
        replay = ReplayModel(records[:1], "main", fallback=make_model(srv))
        first = replay.query(MESSAGES, TOOLS)
        assert len(srv.requests) == 0 and replay.cost_usd == 0.0
        second = replay.query(MESSAGES, TOOLS)
        assert len(srv.requests) == 1
    assert first.content == "first" and second.content == "live"
    assert replay.replayed == 1 and replay.cost_usd == pytest.approx(1000 * 2.5 / 1e6)


def test_reply_json_round_trip_is_lossless() -> None:
    original = ModelReply(
        content="text",
        tool_calls=[ToolCall("edit", {"path": "a", "n": [1, 2]}, id="c9")],
        mode="json-text",
        usage=Usage(12, 3, 0.25),
        message={"role": "assistant", "content": "text"},
    )
    assert reply_from_json(json.loads(json.dumps(reply_to_json(original)))) == original


# ---- pure parsing helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"name": "edit", "arguments": {"path": "a"}}\n```',
        'I will call {"tool": "edit", "args": {"path": "a"}} now.',
        '{"function": {"name": "edit", "arguments": "{\\"path\\": \\"a\\"}"}}',
        'Data {"x": 1} first, then:\n```\n{"name": "edit", "parameters": {"path": "a"}}\n```',
        '[{"name": "edit", "arguments": {"path": "a"}}]',
    ],
)
def test_json_call_shapes(text: str) -> None:
    calls = actions.parse_json_calls(text, ["edit", "submit"])
    assert [(c.name, c.arguments) for c in calls] == [("edit", {"path": "a"})]


def test_json_parsing_rejects_non_calls() -> None:
    assert actions.parse_json_calls('{"name": "Alice", "age": 3}', ["edit"]) == []
    assert actions.parse_json_calls("no json here", ["edit"]) == []
    assert [c.name for c in actions.parse_json_calls('{"name": "submit"}', ["submit"])] == [
        "submit"
    ]
    two = '[{"name": "edit", "arguments": {}}, {"name": "submit", "arguments": {}}]'
    assert [c.name for c in actions.parse_json_calls(two)] == ["edit", "submit"]


def test_response_format_and_text_instructions() -> None:
    calls = actions.parse_response_format('{"name": "edit", "arguments": {"path": "a"}}')
    assert calls[0].arguments == {"path": "a"}
    assert actions.parse_response_format("not json") == []
    text = actions.text_mode_instructions(TOOLS)
    assert "```action" in text and "- edit: Replace text in a file" in text and "submit" in text
    bad = actions.parse_action_block("```action\nedit\n{oops\n```")
    assert bad[0].name == "edit" and actions.ERROR_KEY in bad[0].arguments


# ---- the server as a program -------------------------------------------------------------


def test_chat_server_command_line(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([{"status": 500}, {"content": "hi", "calls": [{"name": "submit"}]}])
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chat_server", str(script)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10)
        assert [m.id for m in client.models.list()] == ["scripted-model"]
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        got = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
        assert got.choices[0].message.tool_calls[0].function.name == "submit"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_text_replies_after_native_calls_do_not_switch_modes() -> None:
    script = [reply(calls=[call("submit")]), reply("hmm"), reply("hmm again"), reply("still")]
    with ScriptedServer(script) as srv:
        model = make_model(srv)
        replies = [model.query(MESSAGES, TOOLS) for _ in range(4)]
    assert [len(r.tool_calls) for r in replies] == [1, 0, 0, 0]
    assert model.mode == "tools" and all("tools" in r for r in srv.requests)
