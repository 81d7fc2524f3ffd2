"""The agent's prompts: Jinja templates in ``prompts.yaml``, which a user may override.

The bundled file holds every template; a user's YAML overrides any subset of keys. Templates
render with ``StrictUndefined``: a variable the caller did not pass is a bug to surface, not
blank text silently sent to a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict

from sandbox.errors import UserError

BUNDLED = Path(__file__).with_name("prompts.yaml")

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    autoescape=False,
)


class Prompts(BaseModel):
    """Every template the agents render, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    kernel_system: str
    instance: str
    format_error: str
    observation: str
    ideas: str
    refine: str


def render(template: str, **variables: Any) -> str:
    """Render one template; a variable it uses but was not given raises ``UndefinedError``."""
    return _ENV.from_string(template).render(**variables).strip()


def load_prompts(path: Path | None = None) -> Prompts:
    """The bundled prompts, with the keys of the user's YAML file at ``path`` replacing them."""
    merged = _read(BUNDLED)
    if path is not None:
        merged.update(_read(path))
    unknown = sorted(set(merged) - set(Prompts.model_fields))
    if unknown:
        raise UserError(
            f"unknown prompt name(s) {', '.join(unknown)} in {path}",
            f"use only these keys: {', '.join(Prompts.model_fields)}",
        )
    for name, text in merged.items():
        _check(name, text, path or BUNDLED)
    return Prompts(**merged)


def _read(path: Path) -> dict[str, Any]:
    """A YAML mapping of name -> template, or a UserError saying what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(
            f"cannot read the prompts file {path}: {exc.strerror}", "pass an existing YAML file"
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(
            f"the prompts file {path} is not valid YAML: {str(exc).splitlines()[0]}",
            "write a mapping of prompt name to template text (see agents/prompts.yaml)",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"the prompts file {path} is not a mapping",
            "write a mapping of prompt name to template text (see agents/prompts.yaml)",
        )
    return data


def _check(name: str, text: Any, path: Path) -> None:
    """Refuse a template that is not a string or not valid Jinja, before any model call."""
    if not isinstance(text, str):
        raise UserError(
            f"prompt {name!r} in {path} is a {type(text).__name__}, not text",
            "write the template as a YAML string (a `|` block keeps its line breaks)",
        )
    try:
        _ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(
            f"prompt {name!r} in {path} is not valid Jinja (line {exc.lineno}: {exc.message})",
            "fix the template syntax ({{ variable }}, {% if %}...{% endif %})",
        ) from None
