"""Logging and colour for every command: one place sets the `i2v` logger's handler and level.

Library code logs under `i2v.*` (e.g. `i2v.api`: one DEBUG record per API exchange) and never
configures anything; each command calls `configure` through `output_options`, so `-v`, `-q`,
`--no-color`, `I2V_LOG` and `NO_COLOR` mean the same on all of them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import UsageError, redact

LOGGER = "i2v"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
PREFIX = {logging.WARNING: ("warning: ", "yellow"), logging.ERROR: ("error: ", "red")}
log = logging.getLogger(LOGGER)
F = TypeVar("F", bound=Callable[..., Any])


class _ClickHandler(logging.Handler):
    """Records on stderr through click: the stream is looked up per record (so CliRunner's
    capture works), colour follows the context (so NO_COLOR and --no-color hold), and
    registered secrets and URL queries are masked."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # A backstop: API exchanges logged at DEBUG may echo a token or a signed URL.
            message = redact(record.getMessage())
            if record.levelno >= logging.WARNING:
                head, fg = PREFIX.get(record.levelno, ("error: ", "red"))
                click.secho(head, fg=fg, bold=True, err=True, nl=False)
            elif record.levelno < logging.INFO:
                click.echo(f"debug {record.name}: ", err=True, nl=False)
            click.echo(message, err=True)
        except Exception:  # logging must never take the command down
            self.handleError(record)


def level_from(verbose: bool, quiet: bool) -> int:
    """-v, then -q, then I2V_LOG, then INFO (narration shown, debug hidden)."""
    if verbose:
        return logging.DEBUG
    if quiet:
        return logging.WARNING
    name = os.environ.get("I2V_LOG", "").strip().lower()
    if not name:
        return logging.INFO
    if name not in LEVELS:
        raise UsageError(
            f"I2V_LOG={name!r} is not a log level", hint=f"use one of: {', '.join(LEVELS)}"
        )
    return LEVELS[name]


def configure(*, verbose: bool = False, quiet: bool = False, no_color: bool = False) -> None:
    """Install the one stderr handler on `i2v` at the chosen level; turn colour off if asked.

    The threshold sits on the handler, the logger stays at DEBUG: a process that runs several
    commands (tests) must not leave `i2v` filtering records that pytest's caplog wants."""
    for handler in [h for h in log.handlers if isinstance(h, _ClickHandler)]:
        log.removeHandler(handler)
    handler = _ClickHandler(level_from(verbose, quiet))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    if no_color or "NO_COLOR" in os.environ:
        ctx = click.get_current_context(silent=True)
        while ctx is not None:  # the group prints errors after the command's context is gone
            ctx.color = False
            ctx = ctx.parent


def color_enabled() -> bool:
    """False once configure turned colour off (for rich consoles, which click cannot reach)."""
    ctx = click.get_current_context(silent=True)
    return not (ctx is not None and ctx.color is False) and "NO_COLOR" not in os.environ


def warn(message: str) -> None:
    """A warning on stderr (stdout may be JSON); shown even under -q."""
    log.warning(message)


def note(message: str) -> None:
    """Narration on stderr (what was done, where): hidden by -q and I2V_LOG=warning."""
    log.info(message)


def output_options(
    verbose_help: str = "Show debug records on stderr (as I2V_LOG=debug).",
) -> Callable[[F], F]:
    """-v/--verbose, -q/--quiet and --no-color for a command, applied before it runs.

    The command receives `verbose` or `quiet` only if its signature asks for them (plan lists
    fresh jobs under -v, run hides its progress under -q)."""

    def decorate(f: F) -> F:
        wanted = set(inspect.signature(f).parameters)

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            configure(
                verbose=kwargs["verbose"], quiet=kwargs["quiet"], no_color=kwargs.pop("no_color")
            )
            for name in ("verbose", "quiet"):
                if name not in wanted:
                    kwargs.pop(name)
            return f(*args, **kwargs)

        options = [
            click.option("--no-color", is_flag=True, help="No colour (as NO_COLOR=1)."),
            click.option(
                "-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress."
            ),
            click.option("-v", "--verbose", is_flag=True, help=verbose_help),
        ]
        decorated: Any = wrapper
        for option in options:
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate
