"""Sandboxed Jinja: a manifest from an untrusted pull request can neither run code nor read files.

`ImmutableSandboxedEnvironment` blocks attribute escapes (`''.__class__.__mro__`) and mutation;
`StrictUndefined` turns a misspelt variable into an error instead of an empty string. The sandbox
does not bound memory, so `*` and `**` are intercepted: `'x' * 10**10` is an error here, not an
out-of-memory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import concat

from ..errors import TemplateError

MAX_RESULT = 100_000
"""Longest string or list a template may build with `*`."""
MAX_EXPONENT = 64


def slug(value: Any) -> str:
    """A value as a job-id fragment: `Golden hour!` -> `Golden-hour`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = re.sub(r"[^A-Za-z0-9._]+", "-", str(value)).strip("-.")
    return text or "x"


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > MAX_RESULT
                ):
                    raise SecurityError(f"the result would be longer than {MAX_RESULT:,} items")
        return super().call_binop(context, operator, left, right)


@functools.cache
def environment() -> jinja2.Environment:
    env = _Env(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["slug"] = slug
    return env


def compile_template(source: str, where: str) -> jinja2.Template:
    try:
        return environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error (template line {exc.lineno}): {exc.message}",
            where=where,
            hint="check the {{ }} and {% %} pairs",
        ) from None


def base_context() -> dict[str, Any]:
    """The sandbox's globals (range, dict, …): the first layer of every render context."""
    return dict(environment().globals)


def render(template: jinja2.Template, context: Mapping[str, Any], *, where: str, what: str) -> str:
    """Render, translating Jinja's errors to TemplateError naming the job and the variable.

    context must start from base_context(). It is shared with Jinja rather than copied, which
    is 3x faster per render (the sandbox is immutable, so templates cannot change it)."""
    try:
        ctx = template.new_context(
            dict(context) if not isinstance(context, dict) else context, shared=True
        )
        return concat(template.root_render_func(ctx)).strip()
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
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateError(f"{what}: {type(exc).__name__}: {exc}", where=where) from None


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text
