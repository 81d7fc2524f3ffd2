"""Which model server to talk to, and how, resolved from flags, environment and files.

Precedence, highest first: command-line flags (values that are not None), the environment
(``OPTIMIZER_MODEL``, ``OPTIMIZER_BASE_URL``, ``OPTIMIZER_API_KEY``, then the OpenAI
client's own ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_MODEL``), the project's
``[tool.optimizer.model]`` table in ``pyproject.toml`` or ``[model]`` in ``optimizer.toml``,
then the defaults below. Project files are committed, so keep keys out of them: name the
variable that holds the key with ``api_key_env = "MY_KEY_VAR"`` (a literal ``api_key`` is
accepted but discouraged). When a file names ``api_key_env`` and that variable is set, it
beats the generic ``OPENAI_API_KEY``, so a project pointed at another provider does not
send that provider your OpenAI key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.protocols import ModelError

Mode = Literal["auto", "tools", "json-text", "response-format", "text"]

# Environment variables per field, most specific first.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "model": ("OPTIMIZER_MODEL", "OPENAI_MODEL"),
    "base_url": ("OPTIMIZER_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("OPTIMIZER_API_KEY", "OPENAI_API_KEY"),
}
NO_MODEL_FIX = (
    "set OPENAI_API_KEY, or OPTIMIZER_BASE_URL for a local OpenAI-compatible server "
    "(e.g. http://127.0.0.1:8080/v1), or pass --base-url; --candidate PATCH runs with no model"
)


class ModelConfig(BaseModel):
    """How to reach one OpenAI-compatible chat-completions endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = None
    max_tokens: int | None = Field(
        None, gt=0, description="Cap on each reply's tokens (None: the server's default)."
    )
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(0.5, ge=0)  # base of the exponential backoff between retries
    mode: Mode = "auto"
    prices: Path | None = None  # a TOML file overriding the bundled prices


CONFIG_FILES = (("pyproject.toml", ("tool", "optimizer", "model")), ("optimizer.toml", ("model",)))
FILE_KEYS = frozenset(ModelConfig.model_fields) | {"api_key_env"}


def resolve_model_config(root: Path | None = None, **flags: Any) -> ModelConfig:
    """The config for a run in ``root`` (None: read no project file), flags winning.

    ``flags`` take ModelConfig field names; None means "not given".
    """
    unknown = set(flags) - set(ModelConfig.model_fields)
    if unknown:
        raise TypeError(f"unknown model flag(s): {', '.join(sorted(unknown))}")
    values = _file_values(root) if root is not None else {}
    key_env = values.pop("api_key_env", None)
    values.update(_env_values())
    if key_env and os.environ.get(key_env) and not os.environ.get("OPTIMIZER_API_KEY"):
        values["api_key"] = os.environ[key_env]
    values.update({k: v for k, v in flags.items() if v is not None})
    return _validated(values, "the flags or the environment")


def _validated(values: dict[str, Any], where: str) -> ModelConfig:
    """A ModelConfig from ``values``; a bad value is a ModelError naming ``where`` and key."""
    try:
        return ModelConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ModelError(
            f"bad model setting {key} in {where}: {first['msg']}",
            f"give {key} a valid value (see `optimizer run --help`)",
        ) from err


def require_endpoint(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` ready for a client: a key, or a base URL (a local server gets key "none").

    Raises ModelError when there is neither, since the OpenAI client would otherwise fail
    later with a message that does not say how to run without a model.
    """
    if cfg.api_key:
        return cfg
    if cfg.base_url:
        return cfg.model_copy(update={"api_key": "none"})
    raise ModelError("no model is configured", NO_MODEL_FIX)


def _env_values() -> dict[str, str]:
    """The first non-empty environment variable for each field that has one."""
    values = {}
    for field, names in ENV_VARS.items():
        found = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if found is not None:
            values[field] = found
    return values


def _file_values(root: Path) -> dict[str, Any]:
    """The model table of root's pyproject.toml, updated by optimizer.toml's (more specific).

    Each file is validated on its own so an error names the file that holds the bad key.
    """
    values: dict[str, Any] = {}
    for name, keys in CONFIG_FILES:
        path = root / name
        if path.is_file():
            table = _read_table(path, keys)
            header = "[" + ".".join(keys) + "]"
            _validated({k: v for k, v in table.items() if k != "api_key_env"}, f"{path} {header}")
            values.update(table)
    return values


def _read_table(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """One table of a TOML file, checked for unknown keys; paths made relative to the file."""
    header = "[" + ".".join(keys) + "]"
    try:
        data: Any = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ModelError(f"{path} is not valid TOML ({err})", f"fix the syntax of {path}") from err
    for key in keys:
        data = data.get(key, {}) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: {header} must be a table", f"write it as {header} KEY = VALUE")
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ModelError(
            f"{path}: unknown key {unknown[0]!r} in {header}",
            f"use only {', '.join(sorted(FILE_KEYS))}",
        )
    if "api_key_env" in data and not isinstance(data["api_key_env"], str):
        raise ModelError(
            f"{path}: api_key_env in {header} must be a string",
            'name the environment variable, e.g. api_key_env = "OPENAI_API_KEY"',
        )
    if isinstance(data.get("prices"), str):
        data = {**data, "prices": (path.parent / data["prices"]).resolve()}
    return data
