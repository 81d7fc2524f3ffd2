"""A real, scripted OpenAI-compatible chat server on 127.0.0.1, for tests with no LLM.

It speaks ``POST /v1/chat/completions`` (and ``/chat/completions``) and ``GET /v1/models``
over HTTP in the OpenAI wire format, so tests drive the real ``openai`` client exactly as a
run would drive vLLM or llama.cpp. Each request is answered by the next step of a script::

    with ScriptedServer([reply(calls=[call("edit", path="a.py")]), error(500)]) as srv:
        model = OpenAIModel(ModelConfig(base_url=srv.base_url, api_key="k"))

A step is ``reply(...)``, ``error(status, ...)``, ``delay(seconds, then=step)`` or a
callable ``f(request_body) -> step``. A reply's calls are rendered the way the request asked
for them, as a server with a well-behaved model would: native ``tool_calls`` when the request
has ``tools``; the JSON object ``{"name", "arguments"}`` when it has ``response_format``;
else a plain-text ```action block. ``reply(as_text_json=True)`` writes them as a ```json
block in the text instead (as small llama.cpp models do). When the script runs out the
server answers "script exhausted" with no call, so an agent loop ends by its own limits.

Command line: ``python -m tests.chat_server SCRIPT.json --port N`` serves a script written
as a JSON list of ``{"content": .., "calls": [{"name": .., "arguments": {..}}]}`` or
``{"status": 500, "message": ..}`` steps, and prints its base URL.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = dict[str, Any] | Callable[[dict[str, Any]], Any]


# ---- script steps ------------------------------------------------------------------------


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """One tool call the scripted model makes."""
    return {"name": name, "arguments": arguments}


def raw_call(name: str, arguments_text: str) -> dict[str, Any]:
    """A tool call whose arguments string is sent verbatim (e.g. broken JSON)."""
    return {"name": name, "arguments": arguments_text}


def reply(
    content: str = "",
    calls: Iterable[dict[str, Any]] = (),
    *,
    as_text_json: bool = False,
    usage: tuple[int, int] | None = (100, 20),
) -> dict[str, Any]:
    """An assistant answer; ``usage=None`` leaves the usage field out, as some servers do."""
    return {
        "kind": "reply",
        "content": content,
        "calls": list(calls),
        "as_text_json": as_text_json,
        "usage": list(usage) if usage else None,
    }


def error(status: int, message: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP error with an OpenAI-style ``{"error": {"message": ...}}`` body."""
    return {"kind": "error", "status": status, "message": message, "headers": headers or {}}


def delay(seconds: float, then: Step | None = None) -> dict[str, Any]:
    """Wait ``seconds`` (to trip a client timeout), then answer ``then``."""
    return {"kind": "delay", "seconds": seconds, "then": then}


def step_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """A step from the command line's JSON form."""
    if "status" in data:
        return error(int(data["status"]), data.get("message", ""), data.get("headers"))
    if "delay" in data:
        then = step_from_json(data["then"]) if data.get("then") else None
        return delay(float(data["delay"]), then)
    calls = [call(c["name"], **c.get("arguments", {})) for c in data.get("calls", [])]
    return reply(data.get("content", ""), calls, as_text_json=bool(data.get("as_text_json")))


# ---- rendering a reply in the wire format --------------------------------------------------


def _fenced(lang: str, text: str) -> str:
    return f"```{lang}\n{text}\n```"


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def render(step: dict[str, Any], body: dict[str, Any], ignore_tools: bool, n: int) -> dict:
    """The chat.completion for a reply step, with its calls in the form the request asks."""
    content, calls = step["content"], step["calls"]
    tool_calls = []
    if calls and step["as_text_json"]:
        shown = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        content += "\n" + _fenced("json", json.dumps(shown[0] if len(shown) == 1 else shown))
    elif calls and "tools" in body and not ignore_tools:
        tool_calls = [
            {
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {"name": c["name"], "arguments": _arguments_text(c["arguments"])},
            }
            for i, c in enumerate(calls)
        ]
    elif calls and "response_format" in body:
        content = json.dumps({"name": calls[0]["name"], "arguments": calls[0]["arguments"]})
    elif calls and "tools" not in body:
        first = calls[0]
        args = _arguments_text(first["arguments"]) if first["arguments"] else ""
        content += "\n" + _fenced("action", f"{first['name']}\n{args}".strip())
    message: dict[str, Any] = {"role": "assistant", "content": content.strip() or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "logprobs": None,
            }
        ],
    }
    if step["usage"]:
        prompt, completion_tokens = step["usage"]
        completion["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }
    return completion


# ---- the server ----------------------------------------------------------------------------


class ScriptedServer:
    """A threaded HTTP server on 127.0.0.1 that answers from ``script``, in order.

    ``requests`` holds every chat request body received (refused ones included), which
    lets a test prove what the client sent.
    """

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        refuse_tools: bool = False,
        refuse_response_format: bool = False,
        ignore_tools: bool = False,
        require_key: str | None = None,
        model: str = "scripted-model",
        port: int = 0,
    ) -> None:
        self.script: list[Step] = list(script)
        self.refuse_tools = refuse_tools
        self.refuse_response_format = refuse_response_format
        self.ignore_tools = ignore_tools
        self.require_key = require_key
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.served = 0  # script steps consumed
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; later requests get connection refused."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- answering -----------------------------------------------------------------------

    def answer(self, body: dict[str, Any], auth: str) -> tuple[int, dict, dict[str, str]]:
        """(status, JSON body, headers) for one chat request."""
        with self._lock:
            self.requests.append(body)
        if self.require_key is not None and auth != f"Bearer {self.require_key}":
            return _error_body(401, "Incorrect API key provided", {})
        if self.refuse_tools and "tools" in body:
            return _error_body(400, "tools are not supported by this server", {})
        if self.refuse_response_format and "response_format" in body:
            return _error_body(400, "response_format is not supported", {})
        with self._lock:
            step: Any = self.script[self.served] if self.served < len(self.script) else None
            self.served += 1
            n = self.served
        return self._serve(step, body, n)

    def _serve(self, step: Any, body: dict[str, Any], n: int) -> tuple[int, dict, dict]:
        """Resolve callables and delays, then render the step."""
        while True:
            if callable(step):
                step = step(body)
            elif step is not None and step["kind"] == "delay":
                time.sleep(step["seconds"])
                step = step["then"] or reply("answered after a delay")
            else:
                break
        if step is None:
            step = reply("script exhausted")
        if step["kind"] == "error":
            return _error_body(step["status"], step["message"], step["headers"])
        return 200, render(step, body, self.ignore_tools, n), {}

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "tests"}],
        }


def _error_body(status: int, message: str, headers: dict[str, str]) -> tuple[int, dict, dict]:
    text = message or f"scripted error {status}"
    return status, {"error": {"message": text, "type": "scripted", "code": status}}, headers


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``server``'s script."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, server.models(), {})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}}, {})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "the body is not JSON"}}, {})
                return
            self._send(*server.answer(body, self.headers.get("Authorization", "")))

        def _send(self, status: int, payload: dict, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: tests read ``server.requests`` instead of a log."""

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve a JSON script until interrupted, printing the base URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="JSON list of steps")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--refuse-tools", action="store_true")
    parser.add_argument("--refuse-response-format", action="store_true")
    parser.add_argument("--ignore-tools", action="store_true")
    args = parser.parse_args(argv)
    with open(args.script) as handle:
        steps = [step_from_json(item) for item in json.load(handle)]
    server = ScriptedServer(
        steps,
        refuse_tools=args.refuse_tools,
        refuse_response_format=args.refuse_response_format,
        ignore_tools=args.ignore_tools,
        port=args.port,
    )
    with server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
