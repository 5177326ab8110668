"""Simple templates, rendered without Jinja: plain text and `{{ name }}` / `{{ name.attr }}`
substitutions, which is what most prompts and output paths are.

Jinja spends ~0.1 ms a render building its context and budget, and ~1 ms compiling: 100,000
jobs with their own prompt text would take minutes. A simple template renders to exactly what
Jinja renders from it (tests/test_simple_template.py checks the two against each other):

- the source has no `{%`, `{#` or carriage return, and every `{{` opens `{{ path }}` with only
  spaces around a dotted name, which Jinja itself parses as a plain variable (not `true`,
  `self`, `loop`, …);
- a variable is looked up in the context dict as Jinja's resolve does, each `.attr` through the
  sandbox's own getattr (Jinja's code calls the same function), and the value printed by `str`,
  as Jinja's compiled `yield str(...)` does; Jinja drops one trailing newline of the source.

Anything else (a missing variable, an unsafe attribute, an output past the limit, a value
that cannot be printed) declines: the caller renders with Jinja, which raises its usual error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

_VAR = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*) *\}\}")
_SPECIAL = frozenset({"self", "super", "loop", "caller", "varargs", "kwargs"})
"""Names Jinja's compiler treats specially: left to Jinja."""
MAX_LOOKUPS = 1_000
"""At most this many attribute lookups: far below the sandbox's step budget (each lookup is a
step, and Jinja checks its clock every 256), so Jinja could never refuse what this renders."""

Piece = str | tuple[str, ...]
"""Literal text, or a variable as its name and attributes."""
_MISSING = object()


class Template:
    """A compiled template: simple pieces (rendered here), a Jinja template, or both."""

    __slots__ = ("jinja", "pieces", "source")

    def __init__(
        self, source: str, pieces: tuple[Piece, ...] | None, jinja: jinja2.Template | None
    ) -> None:
        self.source = source
        self.pieces = pieces
        self.jinja = jinja
        """Compiled on first need when pieces is set: only a declined render needs it."""

    def fast(self, context: Mapping[str, Any], env: jinja2.Environment, limit: int) -> str | None:
        """The rendered text (not stripped), or None to let Jinja render (and explain)."""
        if self.pieces is None:
            return None
        out: list[str] = []
        get = context.get
        for piece in self.pieces:
            if piece.__class__ is str:
                out.append(piece)
                continue
            # `{{ name }}` and `{{ name.key }}` of a plain dict inline, the rest by _lookup
            value = get(piece[0], _MISSING)
            if len(piece) == 2 and value.__class__ is dict and piece[1] not in _DICT_NAMES:
                value = value.get(piece[1], _MISSING)
            elif len(piece) != 1:
                value = _lookup(piece, context, env)  # type: ignore[arg-type]
                if value is None:
                    return None
            if value.__class__ is not str:
                if value is _MISSING or isinstance(value, jinja2.Undefined):
                    return None
                try:
                    value = str(value)
                except Exception:  # Jinja reproduces it, with its message
                    return None
            out.append(value)
        text = "".join(out)  # past the limit: Jinja refuses it (the pieces exist already)
        return text if len(text) <= limit else None


_DICT_NAMES = frozenset(dir(dict))
"""A plain dict has no other attributes: the sandbox's getattr of any other name is an item."""


def _lookup(path: tuple[str, ...], context: Mapping[str, Any], env: jinja2.Environment) -> Any:
    """The text of a variable, or None when Jinja should render it (missing, unsafe, …)."""
    value = context.get(path[0], _MISSING)
    try:
        for attr in path[1:]:
            if value.__class__ is dict and attr not in _DICT_NAMES:
                # what SandboxedEnvironment.getattr does for a dict, without its AttributeError
                value = value.get(attr, _MISSING)
            elif value is _MISSING or isinstance(value, jinja2.Undefined):
                return None
            else:
                value = SandboxedEnvironment.getattr(env, value, attr)  # type: ignore[arg-type]
        if value is _MISSING or isinstance(value, jinja2.Undefined):
            return None
        return value if value.__class__ is str else str(value)
    except Exception:  # Jinja reproduces it, with its message
        return None


def simple_pieces(source: str) -> tuple[Piece, ...] | None:
    """source split into text and variables, or None if it is not a simple template."""
    if "\r" in source or "{%" in source or "{#" in source:
        return None
    if source.endswith("\n"):  # Jinja's keep_trailing_newline=False
        source = source[:-1]
    pieces: list[Piece] = []
    pos = lookups = 0
    while (at := source.find("{{", pos)) >= 0:
        m = _VAR.match(source, at)
        if m is None or not _plain_variable(m.group(1)):
            return None
        if at > pos:
            pieces.append(source[pos:at])
        path = tuple(m.group(1).split("."))
        lookups += len(path) - 1
        pieces.append(path)
        pos = m.end()
    if lookups > MAX_LOOKUPS:
        return None
    if pos < len(source):
        pieces.append(source[pos:])
    return tuple(pieces)


@functools.lru_cache(maxsize=1024)
def _plain_variable(path: str) -> bool:
    """Whether Jinja parses `{{ path }}` as a variable with attributes, nothing else."""
    from .templating import environment  # templating imports this module

    try:
        body = environment().parse(f"{{{{ {path} }}}}").body
    except jinja2.TemplateSyntaxError:
        return False
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return False
    node = body[0].nodes[0]
    while isinstance(node, nodes.Getattr):
        node = node.node
    return isinstance(node, nodes.Name) and node.name not in _SPECIAL
