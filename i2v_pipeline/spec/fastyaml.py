"""A fast reader for a large manifest's `jobs:` list, written one `key: value` per line.

PyYAML builds a Python node for every value: a 50 MB manifest of 100,000 explicit jobs takes
about a minute. Generated manifests write each job as a block mapping of one-line values, which
this module reads with a line grammar narrow enough that its meaning is not in doubt:

- the section is a top-level `jobs:` line, then items `- key: value` at indentation 0 or 2, each
  further `key: value` line two columns in; no comments, blank-with-spaces lines or tabs;
- a value is a quoted string with no escape or quote inside, a plain scalar without `:` or `#`
  (typed by PyYAML's own resolver: text, a decimal integer, a boolean, null; anything else is
  declined), or a flow `{key: plain, ...}` / `[plain, ...]` of short plain words.

Anything else, anywhere, declines (None) and the whole document goes through the YAML loader;
so does a document whose remainder (the text with the section blanked) does not put `jobs`
exactly on that line. The values and `file:line:column` marks are those the loader gives
(tests/test_fastyaml.py compares the two on many documents).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml

Path = tuple[str | int, ...]
Marks = dict[Path, tuple[int, int]]
Parse = Callable[[str, str], tuple[Any, Marks]]

THRESHOLD = 1 << 20
"""Only documents this long try the fast path: a small manifest gains nothing from it."""

_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_BAD = "\x00-\x1f\x7f-\x9f\ufeff\ufffe\uffff"
_ITEM = {indent: re.compile(rf" {{{indent}}}- ({_KEY}):(?: (.*))?") for indent in (0, 2)}
_FIELD = {indent: re.compile(rf" {{{indent + 2}}}({_KEY}): (.*)") for indent in (0, 2)}
_QUOTED = re.compile(rf'"([^"\\{_BAD}]*)"|\'([^\'{_BAD}]*)\'')
_PLAIN = re.compile(rf"[A-Za-z0-9_][^:#{_BAD}]*(?<! )")
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_FLOW_PAIR = re.compile(rf"({_KEY}): ([A-Za-z0-9_][A-Za-z0-9_./-]*)")
_INT = re.compile(r"0|[1-9][0-9]*")
_TOP_KEY = re.compile(rf"{_KEY}:( |$)")
_RESOLVER = yaml.resolver.Resolver()
_TEXT_ONLY = (
    frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
    - set(_RESOLVER.yaml_implicit_resolvers)
    if None not in _RESOLVER.yaml_implicit_resolvers
    else frozenset()
)
"""First characters no implicit resolver looks at: a plain scalar starting so is text."""
_STR, _INT_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"


class _Decline(Exception):
    """Not in the narrow grammar: the YAML loader reads the document."""


def parse_fast(text: str, source: str, parse: Parse, threshold: int = THRESHOLD) -> Any:
    """(value, marks) as parse (the full loader) gives them, or None to let it read text."""
    if len(text) < threshold:
        return None
    lines = text.split("\n")
    try:
        first = lines.index("jobs:")
    except ValueError:
        return None
    top = next((line for line in lines if line and not line.startswith("#")), "")
    if not _TOP_KEY.match(top):  # a flow or multi-document top level: the loader's business
        return None
    end = first + 1
    while end < len(lines) and (lines[end][:1] in (" ", "-") or lines[end] == ""):
        end += 1
    while end > first + 1 and lines[end - 1] == "":  # blank lines end the section
        end -= 1
    try:
        jobs, starts = _jobs(lines, first + 1, end, None)
    except _Decline:
        return None
    # the rest without the section: its marks past the section move down by its length
    cut = end - first - 1
    try:
        data, rest_marks = parse("\n".join([*lines[:first], "jobs: []", *lines[end:]]), source)
    except Exception:  # the loader reads the whole text and says what is wrong
        return None
    rest_marks = {k: (ln + cut if ln > first + 1 else ln, c) for k, (ln, c) in rest_marks.items()}
    if (
        not isinstance(data, dict)
        or data.get("jobs") != []
        or rest_marks.get(("jobs",))
        != (
            first + 1,
            1,
        )
    ):
        return None  # `jobs:` was not the top-level key there (inside a quoted scalar, …)
    data["jobs"] = jobs
    return data, JobMarks(rest_marks, lines, starts, end)


class JobMarks(Mapping[Path, tuple[int, int]]):
    """The marks of a fast-read document: the rest's as the loader gave them; a job's worked
    out from its lines when first asked for (only errors ask), by the reading that read it.
    A million marks of 100,000 jobs are never built, nor held."""

    def __init__(self, rest: Marks, lines: list[str], starts: list[int], end: int) -> None:
        self.rest, self.lines, self.starts, self.end = rest, lines, starts, end
        self.indent = 0 if lines[starts[0]].startswith("-") else 2
        self.jobs: dict[int, Marks] = {}

    def _index(self, key: Path) -> int | None:
        """The number of the job key is in, or None when key is outside the jobs section."""
        if len(key) < 2 or key[0] != "jobs" or key[1].__class__ is not int:
            return None
        i = int(key[1])
        return i if 0 <= i < len(self.starts) else None

    def _marks(self, i: int) -> Marks:
        """Job i's marks, read again from its lines on first need."""
        found = self.jobs.get(i)
        if found is None:
            found = self.jobs[i] = {}
            stop = self.starts[i + 1] if i + 1 < len(self.starts) else self.end
            _jobs(self.lines, self.starts[i], stop, found, i)
        return found

    def __getitem__(self, key: Path) -> tuple[int, int]:
        i = self._index(key)
        if i is None:
            return self.rest[key]
        if len(key) == 2:  # an item's mark (its line, past the dash) needs no reading
            return (self.starts[i] + 1, self.indent + 3)
        return self._marks(i)[key]

    def __iter__(self) -> Iterator[Path]:
        yield from self.rest
        for i in range(len(self.starts)):
            yield from self._marks(i)

    def __len__(self) -> int:
        return len(self.rest) + sum(len(self._marks(i)) for i in range(len(self.starts)))


def _jobs(
    lines: list[str], start: int, end: int, marks: Marks | None, first: int = 0
) -> tuple[list[dict[str, Any]], list[int]]:
    """The jobs of lines[start:end] (numbered from first), and the line index of each job's
    first line; their marks go into marks, unless it is None."""
    if start >= end:
        raise _Decline
    indent = 0 if lines[start].startswith("-") else 2
    item, field = _ITEM[indent], _FIELD[indent]
    dash = " " * indent + "- "
    jobs: list[dict[str, Any]] = []
    starts: list[int] = []
    job: dict[str, Any] = {}
    i = first - 1  # the current job's index
    for n in range(start, end):
        line = lines[n]
        # an item line starts with the dash (a field line with spaces there): one regex a line
        m = item.fullmatch(line) if line.startswith(dash) else field.fullmatch(line)
        if m is None:
            raise _Decline
        key, raw = m.groups()
        if m.re is item:
            job = {}
            jobs.append(job)
            starts.append(n)
            i += 1
            if marks is not None:
                marks[("jobs", i)] = (n + 1, indent + 3)
        elif not jobs:
            raise _Decline
        if raw is None or key in job:
            raise _Decline
        col = m.start(2)
        if marks is None:
            job[key] = _value(raw, n + 1, col, (), None)
            continue
        path = ("jobs", i, key)
        value = job[key] = _value(raw, n + 1, col, path, marks)
        if value.__class__ is list or value.__class__ is dict:
            marks[path] = (n + 1, m.start(1) + 1)  # a collection's mark is its key's
        else:
            marks[path] = (n + 1, col + 1)
    return jobs, starts


def _value(raw: str, line: int, col: int, path: Path, marks: Marks | None) -> Any:
    first = raw[:1]
    if first == '"' or first == "'":
        inner = raw[1:-1]
        # the usual quoted text, without the regex: printable (so none of _BAD), no quote or
        # backslash inside; anything else is left to the regex's exact rule
        plain = len(raw) > 1 and raw[-1] == first and first not in inner
        if plain and raw.isprintable() and (first == "'" or "\\" not in inner):
            return inner
        q = _QUOTED.fullmatch(raw)
        if q is None:
            raise _Decline
        return q.group(1) if q.group(1) is not None else q.group(2)
    if first == "{":
        out: dict[str, Any] = {}
        at = col + 1
        for part in _flow_parts(raw):
            p = _FLOW_PAIR.fullmatch(part)
            if p is None or p.group(1) in out:
                raise _Decline
            out[p.group(1)] = _scalar(p.group(2))
            if marks is not None:
                marks[(*path, p.group(1))] = (line, at + p.start(2) + 1)
            at += len(part) + 2
        return out
    if first == "[":
        items: list[Any] = []
        at = col + 1
        for part in _flow_parts(raw):
            if _WORD.fullmatch(part) is None:
                raise _Decline
            if marks is not None:
                marks[(*path, len(items))] = (line, at + 1)
            items.append(_scalar(part))
            at += len(part) + 2
        return items
    if _PLAIN.fullmatch(raw) is None:
        raise _Decline
    return _scalar(raw)


def _flow_parts(raw: str) -> list[str]:
    """The comma-separated words of `{...}` or `[...]` on one line (`{}` and `[]`: none)."""
    if raw[-1:] != {"{": "}", "[": "]"}[raw[0]]:
        raise _Decline
    inner = raw[1:-1]
    if not inner:
        return []
    parts = inner.split(", ")
    if any(not p or p != p.strip() for p in parts):
        raise _Decline
    return parts


def _scalar(text: str) -> Any:
    """A plain scalar as the loader types it: text, a decimal integer, a boolean or null."""
    if text[:1] in _TEXT_ONLY:  # no implicit tag starts so (`j000123`, a job id): text
        return text
    return _typed(text)


@functools.lru_cache(maxsize=4096)
def _typed(text: str) -> Any:
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if tag == _STR:
        return text
    if tag == _INT_TAG and _INT.fullmatch(text):
        return int(text)
    if tag == _BOOL:
        return yaml.constructor.SafeConstructor.bool_values[text.lower()]
    if tag == _NULL:
        return None
    raise _Decline  # floats, octal or sexagesimal integers, timestamps, `=`, `<<`
