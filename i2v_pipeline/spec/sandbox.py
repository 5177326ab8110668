"""A Jinja sandbox bounded in time, memory and output, for templates from untrusted manifests.

`ImmutableSandboxedEnvironment` stops attribute escapes and mutation but not denial of service:
`{% for a in range(10**5) %}{% for b in range(10**5) %}` hangs and `"x"|center(10**9)` eats
a gigabyte. Every render here carries a Budget, and every step the template takes (call, filter,
operator, attribute, loop iteration, string join) spends from it:

- work: at most MAX_OPS steps and MAX_SECONDS of wall clock per render;
- size: every value a step builds is at most MAX_RESULT long (strings, lists, nested contents;
  integers at most MAX_BITS), checked *before* allocating where the size is predictable from
  the arguments (`*`, `+`, `**`, `%`, widths, `replace`, `join`, `indent`, …) and after each
  step otherwise, so no single step can allocate more than a few times MAX_RESULT;
- depth: at most MAX_DEPTH nested calls (macro recursion).

The rendered text itself is capped by the caller (templating.render) at MAX_OUTPUT.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from string import Formatter
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, pass_context

MAX_RESULT = 100_000
"""Longest string or list (contents included) one step of a template may build."""
MAX_DIGITS = 4_000
"""Longest integer a template may compute, in decimal digits: below Python's limit on turning
an int into text (4,300 by default), so every number a template holds can be printed."""
MAX_BITS = int(MAX_DIGITS * math.log2(10))
MAX_OPS = 200_000
MAX_SECONDS = 1.0
MAX_DEPTH = 32


class LimitExceeded(TemplateRuntimeError):
    """A template went over its budget of work, size or depth."""


class Budget:
    """What one render may still spend. Steps are counted; the clock is read every 256."""

    __slots__ = ("deadline", "depth", "ops")

    def __init__(self) -> None:
        self.ops = 0
        self.depth = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def tick(self) -> None:
        """Count one step; raise LimitExceeded past the step or time bound."""
        self.ops += 1
        if self.ops > MAX_OPS:
            raise LimitExceeded(f"it takes more than {MAX_OPS:,} steps")
        if not self.ops & 255 and time.monotonic() > self.deadline:
            raise LimitExceeded(f"it takes longer than {MAX_SECONDS:g} s")


_BUDGET: ContextVar[Budget | None] = ContextVar("i2v_template_budget", default=None)


def current() -> Budget:
    """The budget of the render in progress (a fresh one outside templating.render)."""
    budget = _BUDGET.get()
    if budget is None:  # rendered outside templating.render: bound it all the same
        budget = Budget()
        _BUDGET.set(budget)
    return budget


def start() -> Callable[[], None]:
    """Give the calling render a fresh budget; returns the function that ends it."""
    token = _BUDGET.set(Budget())
    return lambda: _BUDGET.reset(token)


_CONTAINERS = (list, tuple, dict, set, frozenset)


def size(value: Any, limit: int = MAX_RESULT) -> int:
    """Length of a value with the contents of nested containers, counting at most past limit.

    Nested counting matters: `[big] * n` is short but `|string` or `|join` of it is not."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 4  # about its decimal digits, cheaply
    if not isinstance(value, _CONTAINERS):
        return 1
    return _nested(value, limit, {})


def _nested(value: Any, limit: int, seen: dict[int, int]) -> int:
    # seen: sizes of containers already counted; `[x] * n` holds n references to one x
    total = len(value)
    items: Iterable[Any] = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, _CONTAINERS):
            known = seen.get(id(item))
            if known is None:
                known = seen[id(item)] = _nested(item, limit - total, seen)
            total += known
        if total > limit:
            break
    return total


def _refuse(what: str, n: int) -> LimitExceeded:
    return LimitExceeded(f"{what} would be {n:,} long, more than the {MAX_RESULT:,} allowed")


def check_size(n: int, what: str = "the result") -> None:
    """Raise if a result of n characters (or digits) would pass the size bound."""
    if n > MAX_RESULT:
        raise _refuse(what, n)


def checked(value: Any) -> Any:
    """value, if it is within the size bound."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_BITS:
        raise _too_many_digits()
    check_size(size(value))
    return value


def _too_many_digits() -> LimitExceeded:
    return LimitExceeded(f"a number would have more than {MAX_DIGITS:,} digits")


@contextlib.contextmanager
def _digits_bounded() -> Iterator[None]:
    """Python's own refusal to convert a huge int to or from text (a ValueError naming
    sys.set_int_max_str_digits) reported as the sandbox's size limit, in words."""
    try:
        yield
    except ValueError as exc:
        if "int_max_str_digits" in str(exc):
            raise _too_many_digits() from None
        raise


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _text(value: Any) -> int:
    return size(value) if isinstance(value, str | list | tuple | dict) else len(str(value))


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d*)(?:\.(?:\*|\d*))?")


def _format_size(fmt: Any, args: Iterable[Any]) -> int:
    """An upper estimate of `fmt % args` or `fmt.format(*args)`: each field is at most its
    widest width or its longest argument; numeric arguments count as widths only where the
    format takes widths from its arguments (`%*s`, `{:{}}`)."""
    if not isinstance(fmt, str):
        return 0
    values = list(args)
    widest = max([0, *(_text(v) for v in values)])
    dynamic = max([0, *(_int(v) for v in values)])
    fields = 0
    specs = [m.group(0) for m in _PRINTF.finditer(fmt)]
    with contextlib.suppress(ValueError):  # not a str.format string: the call will say so
        specs += [f"{{{spec}}}" for _, name, spec, _ in Formatter().parse(fmt) if name is not None]
    for spec in specs:
        fields += 1
        widest = max([widest, *(int(d) for d in re.findall(r"\d+", spec))])
        if "*" in spec or "{" in spec[1:]:
            widest = max(widest, dynamic)
        if len(fmt) + fields * widest > MAX_RESULT:
            break
    return len(fmt) + fields * widest


def _flat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    out = list(args) + list(kwargs.values())
    for v in list(out):
        if isinstance(v, tuple | dict):
            out.extend(v.values() if isinstance(v, dict) else v)
    return out


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _replace(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    s, old, new = a[0], _arg(a, k, 1, "old", ""), _arg(a, k, 2, "new", "")
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    n = len(s) + 1 if not old else s.count(old)
    count = _arg(a, k, 3, "count", None)
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * len(new)


def _join(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    sep, items = _arg(a, k, 1, "d", ""), a[0]
    return sum(_text(x) for x in items) + len(items) * _text(sep)


def _indent(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    s, width = str(a[0]), _arg(a, k, 1, "width", 4)
    return len(s) + (s.count("\n") + 1) * (_int(width) or _text(width))


def _wordwrap(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    s, wrap = str(a[0]), _arg(a, k, 4, "wrapstring", None) or "\n"
    return len(s) + (len(s.split()) + s.count("\n") + 1) * _text(wrap)


def _expandtabs(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    s = str(a[0])
    return len(s) + s.count("\t") * _int(_arg(a, k, 1, "tabsize", 8))


def _sum(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    items = list(a[0])
    total = sum(size(x) for x in items if not isinstance(x, int | float))
    return total * max(1, len(items) // 64)  # list + list copies: quadratic in the count


def _tojson(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    return 8 * size(a[0]) * (1 + _int(_arg(a, k, 1, "indent", 0)))


def _width(i: int, name: str) -> Callable[[tuple[Any, ...], dict[str, Any]], int]:
    return lambda a, k: max(_text(a[0]), _int(_arg(a, k, i, name, 0)))


def _lipsum(a: tuple[Any, ...], k: dict[str, Any]) -> int:
    return 12 * _int(_arg(a, k, 0, "n", 5)) * _int(_arg(a, k, 3, "max", 100))


_Estimate = Callable[[tuple[Any, ...], dict[str, Any]], int]
ESTIMATES: dict[str, _Estimate] = {
    # The steps whose result can be far larger than their arguments, by name (filter, string
    # method or global); args[0] is the filtered value or the string the method is bound to.
    "replace": _replace,
    "join": _join,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "expandtabs": _expandtabs,
    "sum": _sum,
    "tojson": _tojson,
    "center": _width(1, "width"),
    "ljust": _width(1, "width"),
    "rjust": _width(1, "width"),
    "zfill": _width(1, "width"),
    "batch": _width(1, "linecount"),
    "slice": _width(1, "slices"),
    "to_bytes": _width(1, "length"),
    "format": lambda a, k: _format_size(a[0], _flat(a[1:], k)),
    "format_map": lambda a, k: _format_size(a[0], _flat(a[1:], k)),
    "translate": lambda a, k: len(str(a[0])) * (1 + size(a[1]) if len(a) > 1 else 1),
    "lipsum": _lipsum,
}


def _materialise(value: Any) -> Any:
    """An iterator as a list, refused past MAX_RESULT items (so estimates can look at it)."""
    if not isinstance(value, Iterator):
        return value
    out = []
    for item in value:
        out.append(item)
        if len(out) > MAX_RESULT:
            raise _refuse("a sequence", len(out))
    return out


def _precheck(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    estimate = ESTIMATES.get(name)
    if estimate is None or not args:
        return args
    args = (_materialise(args[0]), *args[1:])
    check_size(estimate(args, kwargs), f"the result of `{name}`")
    return args


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """func, spending from the budget and size-checked. It takes the context, which also keeps
    Jinja from running it at compile time on constant arguments (`"x"|center(1000000000)`)."""
    kind = _PassArg.from_obj(func)

    @pass_context
    def bounded(context: Any, *args: Any, **kwargs: Any) -> Any:
        current().tick()
        args = _precheck(name, args, kwargs)
        with _digits_bounded():
            if kind is _PassArg.context:
                return checked(func(context, *args, **kwargs))
            if kind is _PassArg.eval_context:
                return checked(func(context.eval_ctx, *args, **kwargs))
            if kind is _PassArg.environment:
                return checked(func(context.environment, *args, **kwargs))
            return checked(func(*args, **kwargs))

    return bounded


@pass_context
def _counted(context: Any, items: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, each iteration a step: empty nested loops cannot spin for ever."""
    budget = current()
    for item in items:
        budget.tick()
        yield item


def concat(parts: Iterable[Any]) -> str:
    """Jinja's `"".join` for output buffers and `~`, refused past MAX_RESULT characters."""
    current().tick()
    texts = [p if isinstance(p, str) else str(p) for p in parts]
    check_size(sum(map(len, texts)), "a text")
    return "".join(texts)


class _Buffer(list[str]):
    """A block's output buffer (macro, `{% set %}` block, filter block), refused past
    MAX_RESULT characters as it grows, not only when joined."""

    total = 0

    def append(self, text: str) -> None:
        self.total += len(text)
        check_size(self.total, "a block's output")
        super().append(text)

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.append(text)


class _CodeGenerator(CodeGenerator):
    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.bounded_buffer()")

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(node, frame)
        # Module globals, looked up when the render functions run: every buffer join and `~`.
        self.writeline("concat = str_join = environment.bounded_concat")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus bounds on steps, time, sizes and depth."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    bounded_concat = staticmethod(concat)
    bounded_buffer = _Buffer

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {n: _bounded_filter(n, f) for n, f in self.filters.items()}
        self.filters["i2v_counted"] = _counted

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Register a filter whose output is size-checked like every other value."""
        self.filters[name] = _bounded_filter(name, func)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "i2v_counted", [], [], None, None)
            loop.iter.set_ctx("load").set_lineno(loop.lineno).set_environment(self)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Arithmetic, with the size of powers and repetitions checked before computing."""
        current().tick()
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            check_size(left.bit_length() * max(right, 0) // 4, "a power")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    check_size(size(seq) * n)
            if isinstance(left, int) and isinstance(right, int):
                check_size((left.bit_length() + right.bit_length()) // 4, "a product")
        elif operator == "+" and not isinstance(left, int | float):
            check_size(size(left) + size(right))
        elif operator == "%" and isinstance(left, str):
            check_size(_format_size(left, _flat((right,), {})), "a formatted text")
        with _digits_bounded():  # `"%d" % n`
            return checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call, counted, with joins and formats size-checked first."""
        budget = current()
        budget.tick()
        # str.format arrives wrapped by the sandbox; the bound method is its __wrapped__
        target = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str | bytes) and name == "join" and args:  # sep.join(items)
            items = _materialise(args[0])
            check_size(_join((items, owner), {}), "the result of `join`")
            args = (items, *args[1:])
        elif isinstance(owner, str | bytes | int):  # a built-in method: the owner is args[0]
            args = _precheck(name, (owner, *args), kwargs)[1:]
        elif name == "generate_lorem_ipsum":
            _precheck("lipsum", args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise LimitExceeded(f"calls nest more than {MAX_DEPTH} deep (recursion?)")
            with _digits_bounded():
                return checked(super().call(__context, __obj, *args, **kwargs))
        finally:
            budget.depth -= 1

    def getattr(self, obj: Any, attribute: str) -> Any:
        current().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        current().tick()
        return super().getitem(obj, argument)
