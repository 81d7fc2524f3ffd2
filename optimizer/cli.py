"""The ``optimizer`` command line: typer commands that call the orchestration layer.

Every user mistake surfaces as one line, ``error: <problem>. Fix: <fix>``, with exit code 2
(3 for `optimizer ci`, whose exit code 2 means "inconclusive").
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.console import Console
from rich.markup import escape

from optimizer import __version__
from optimizer.errors import UserError

app = typer.Typer(
    name="optimizer",
    help="Make code faster with LLM agents, and measure speed honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(
    help="Build, inspect and check the execution sandbox.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")

err = Console(stderr=True, highlight=False)

#: The user's mistakes (every layer raises the one UserError): one line, never a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (UserError,)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"optimizer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Make code faster with LLM agents, and measure speed honestly."""


from optimizer import (  # noqa: E402
    bench_cmd,
    ci_cmd,
    evaluate_cmd,
    export_cmd,
    grade_cmd,
    run_cmd,
    sandbox_cmd,
    score_cmd,
    show_cmd,
    tasks_cmd,
)

run_cmd.register(app)
show_cmd.register(app)
run_cmd.register_demo(app)
sandbox_cmd.register(sandbox_app)
score_cmd.register(app)
bench_cmd.register(app)
tasks_cmd.register(app)
grade_cmd.register(app)
evaluate_cmd.register(app)
export_cmd.register(app)
ci_cmd.register(app, USER_ERRORS)


class _FlagHelp:
    """``--help`` shows no ``<bool>``: typer gives the flag it adds to each command one."""

    def get_help_option(self, ctx):  # noqa: ANN001, ANN201 (click's signature)
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class _FlagHelpCommand(_FlagHelp, typer.core.TyperCommand):
    pass


class _FlagHelpGroup(_FlagHelp, typer.core.TyperGroup):
    pass


def _no_bool_metavars(typer_app: typer.Typer) -> None:
    """Flags show no ``<bool>`` in the help: a flag takes no value (typer prints one).

    That covers each command's and group's options (the root's ``--version`` included) and
    the ``--help`` flag that typer adds to every one of them.
    """
    import inspect

    from typer.models import DefaultPlaceholder, OptionInfo

    callbacks = [command.callback for command in typer_app.registered_commands]
    if typer_app.registered_callback is not None:
        callbacks.append(typer_app.registered_callback.callback)
    for callback in filter(None, callbacks):
        for param in inspect.signature(callback).parameters.values():
            info = param.default
            if isinstance(info, OptionInfo) and param.annotation in (bool, "bool"):
                info.metavar = info.metavar if info.metavar is not None else ""
    for command in typer_app.registered_commands:
        if command.cls in (None, typer.core.TyperCommand):
            command.cls = _FlagHelpCommand
    for info in [typer_app.info, *typer_app.registered_groups]:
        if isinstance(info.cls, DefaultPlaceholder) or info.cls in (None, typer.core.TyperGroup):
            info.cls = _FlagHelpGroup
    for group in typer_app.registered_groups:
        _no_bool_metavars(group.typer_instance)


_no_bool_metavars(app)


def _epilogs(typer_app: typer.Typer, group: str = "") -> None:
    """An example and the exit codes under each command's help (optimizer/options.py)."""
    from optimizer.options import EPILOGS

    for command in typer_app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        text = EPILOGS.get(f"{group} {name}".strip()) or EPILOGS.get(name)
        if text and not command.epilog:
            command.epilog = text
    for sub in typer_app.registered_groups:
        _epilogs(sub.typer_instance, sub.name or "")


_epilogs(app)


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C (SIGINT) or SIGTERM: every sandboxed run in flight, in any thread, is killed
    now (sandbox.base.CANCEL), and KeyboardInterrupt unwinds the main thread, whose
    ``finally`` blocks remove containers and temp dirs."""
    from sandbox.base import CANCEL

    CANCEL.set()
    raise KeyboardInterrupt


def _command(argv: list[str]) -> str:
    """The (sub)command words of ``argv``: ``ci``, ``sandbox run``."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if words[:1] == ["sandbox"] or words[:1] == ["tasks"]:
        return " ".join(words)
    return words[0] if words else ""


def _user_error_code(command: str) -> int:
    """2 for a user's mistake; 3 for `optimizer ci`, whose 2 means "inconclusive"."""
    return 3 if command == "ci" else 2


def _bad_value(exc: Exception, argv: list[str]) -> str:
    """A pydantic ValidationError about a value the user passed, as one phrase naming the
    option they typed when one matches the field (``budget_s`` -> ``--budget``)."""
    errors = getattr(exc, "errors", lambda: [])()
    if not errors:
        return str(exc).splitlines()[0]
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "a value"
    stem = field.rsplit(".", 1)[-1]
    for name in (stem, stem.removesuffix("_s"), stem.removesuffix("_mb"), stem.removesuffix("_ms")):
        option = "--" + name.replace("_", "-")
        if any(a == option or a.startswith(option + "=") for a in argv):
            field = option
            break
    return f"{field} {first.get('input')!r}: {first.get('msg', 'invalid').lower()}"


def _click_errors() -> tuple[tuple[type[Exception], ...], tuple[type[BaseException], ...]]:
    """Click's UsageError and Abort: typer raises its own vendored copies (newer typer:
    ``typer._click.exceptions.UsageError``, ``typer.exceptions.Abort``) or plain click's."""
    import importlib

    usage: list[type[Exception]] = []
    abort: list[type[BaseException]] = []
    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        usage += [module.UsageError] if hasattr(module, "UsageError") else []
        abort += [module.Abort] if hasattr(module, "Abort") else []
    return tuple(usage), tuple(abort)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one line.

    Typer's usage errors (a mistyped option, a missing argument, a bad choice) and values
    that a settings model refuses (``--budget 0``) are a user's mistakes too: one line,
    ``error: ... Fix: ...``, and the command's exit code for them (2, or 3 for ``ci``)."""
    import pydantic

    usage, abort = _click_errors()

    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored
        signal.signal(signal.SIGINT, _interrupt)
    command = _command(sys.argv[1:])
    code = _user_error_code(command)
    helper = f"optimizer {command} --help".replace("  ", " ")
    try:
        rc = app(standalone_mode=False, prog_name="optimizer")
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(code)
    except usage as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `optimizer sandbox`: the help
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        helper = f"{ctx.command_path} --help" if ctx is not None else helper
        message = exc.format_message().rstrip(".")
        err.print(f"[bold red]error:[/] {escape(message)}. Fix: see `{helper}`", soft_wrap=True)
        sys.exit(code)
    except abort:
        rc = 130
    except pydantic.ValidationError as exc:
        problem = _bad_value(exc, sys.argv[1:])
        fix = f"pass a value in range; see `{helper}`"
        err.print(f"[bold red]error:[/] {escape(problem)}. Fix: {escape(fix)}", soft_wrap=True)
        sys.exit(code)
    if rc == 130:  # Ctrl-C: typer turns the KeyboardInterrupt into exit 130
        from sandbox.base import CANCEL

        if CANCEL.is_set():
            err.print("interrupted: the sandboxed runs in flight were stopped and removed")
    sys.exit(rc if isinstance(rc, int) else 0)
