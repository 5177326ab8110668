"""Sandboxed Jinja: a manifest from an untrusted pull request can neither run code nor read files,
nor hang or exhaust memory.

`ImmutableSandboxedEnvironment` blocks attribute escapes (`''.__class__.__mro__`) and mutation;
sandbox.BoundedEnvironment adds a budget of work, size and depth per render, and render() caps
the rendered text at MAX_OUTPUT. `StrictUndefined` turns a misspelt variable into an error
instead of an empty string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from ..errors import TemplateError
from . import sandbox
from .simple import Template, simple_pieces

MAX_OUTPUT = 64 * 1024
"""Longest rendered prompt or path, in characters: far above any model's prompt limit."""


def slug(value: Any) -> str:
    """A value as a job-id fragment: `Golden hour!` -> `Golden-hour`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = re.sub(r"[^A-Za-z0-9._]+", "-", str(value)).strip("-.")
    return text or "x"


@functools.cache
def environment() -> jinja2.Environment:
    """A fresh bounded Jinja environment: strict undefined, no autoescape, `slug`."""
    env = sandbox.BoundedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
    )
    env.add_filter("slug", slug)
    return env


def compile_template(
    source: str, where: str | Callable[[], str], what: str = "template"
) -> Template:
    """Compile source, turning a syntax error into a TemplateError at where.

    Plain text and `{{ name.attr }}` substitutions (most prompts, most output paths) skip
    Jinja's compiler: they render through Template's fast path (see simple.py)."""
    pieces = simple_pieces(source)
    if pieces is not None:
        return Template(source, pieces, None)
    return Template(source, None, _compile(source, where, what))


@functools.lru_cache(maxsize=256)
def _jinja(source: str) -> jinja2.Template:
    """One compiled Jinja template per distinct source: 100,000 explicit jobs often share one
    `output:` or negative prompt, and compiling costs ~1 ms."""
    return environment().from_string(source)


def _compile(source: str, where: str | Callable[[], str], what: str) -> jinja2.Template:
    """The Jinja template of source; a TemplateError at where (a string, or what gives it)."""
    try:
        return _jinja(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{what}: syntax error (template line {exc.lineno}): {exc.message}",
            where=where if isinstance(where, str) else where(),
            hint="check the {{ }} and {% %} pairs",
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # a 5,000-digit literal, deep nesting
        raise TemplateError(
            f"{what}: cannot be compiled: {type(exc).__name__}: {str(exc)[:100]}",
            where=where if isinstance(where, str) else where(),
        ) from None


def base_context() -> dict[str, Any]:
    """The sandbox's globals (range, dict, …): the first layer of every render context."""
    return dict(environment().globals)


def render(template: Template, context: Mapping[str, Any], *, where: str, what: str) -> str:
    """Render, translating Jinja's errors to TemplateError naming the job and the variable.

    context must start from base_context(). It is shared with Jinja rather than copied, which
    is 3x faster per render (the sandbox is immutable, so templates cannot change it)."""
    fast = template.fast(context, environment(), MAX_OUTPUT)
    if fast is not None:
        return _text(fast.strip(), where, what)
    compiled = template.jinja
    if compiled is None:  # the fast path declined (an undefined variable, …): Jinja says why
        compiled = template.jinja = _compile(template.source, where, "template")
    finish = sandbox.start()
    try:
        ctx = compiled.new_context(
            dict(context) if not isinstance(context, dict) else context, shared=True
        )
        text = _stream(compiled.root_render_func(ctx)).strip()
    except (sandbox.LimitExceeded, RecursionError, MemoryError) as exc:
        raise TemplateError(
            f"{what}: the template goes over the sandbox's limits: {exc or type(exc).__name__}",
            where=where,
            hint=f"templates may build at most {sandbox.MAX_RESULT:,} characters per step and "
            f"{MAX_OUTPUT:,} in all, in at most {sandbox.MAX_OPS:,} steps",
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{what}: {exc.message}",
            where=where,
            hint="define it in vars:, the image's or prompt's vars:, or the matrix",
        ) from None
    except SecurityError as exc:
        raise TemplateError(
            f"{what}: the template did something the sandbox forbids ({exc})",
            where=where,
            hint="templates may use variables, filters and simple expressions only",
        ) from None
    except Exception as exc:  # filters fail on bad input in many ways: `0|wordwrap`, `truncate(-1)`
        detail = str(exc)[:200]
        raise TemplateError(f"{what}: {type(exc).__name__}: {detail}", where=where) from None
    finally:
        finish()
    return _text(text, where, what)


def _text(text: str, where: str, what: str) -> str:
    """text, if it is Unicode text: a lone surrogate (Jinja's `"\\ud800"`, a file name that is
    not UTF-8) cannot be sent, hashed or written."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TemplateError(
                f"{what}: renders {text[exc.start]!a}, a lone surrogate, which is not text",
                where=where,
                hint="write the character itself (or its pair of surrogates) instead",
            ) from None
    return text


def _stream(pieces: Iterator[str]) -> str:
    """The rendered text, refused as soon as it passes MAX_OUTPUT."""
    out: list[str] = []
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_OUTPUT:
            raise sandbox.LimitExceeded(f"it renders more than {MAX_OUTPUT:,} characters")
        out.append(piece)
    return "".join(out)


def is_template(text: str) -> bool:
    """True if text holds any Jinja markup (plain text skips rendering)."""
    return "{{" in text or "{%" in text or "{#" in text
