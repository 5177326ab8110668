"""Load a manifest file: safe YAML with line/column for every value, then the schema.

This is the only module that reads manifest files. YAML is composed into nodes (C loader when
available), then built into plain Python values while recording where each value came from, so
every later error can say `file:line:column`. Aliases are allowed but their expansion is
bounded: a "billion laughs" document is an error, not an out-of-memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError, utf8_damage
from . import fastyaml
from . import validation as schemas

try:  # the C composer is ~10x faster on large manifests
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES = 200_000
"""Upper bound on values built from one document, aliases expanded: the larger of this and the
document's length in characters, which no alias-free document can reach (each value takes at
least two characters), so only alias expansion ("billion laughs") ever hits it."""

MAX_DEPTH = 256
"""Deepest nesting of lists and maps a document may have. Checked on the text before parsing:
the C composer recurses once per level and overflows the C stack (a crash, not an exception)
on a few ten thousand levels."""

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Manifest:
    """A loaded, schema-valid manifest. data is plain JSON-like Python."""

    path: Path
    data: dict[str, Any]
    marks: Mapping[Path_, tuple[int, int]] = field(default_factory=dict, repr=False)
    """Where each value is (line, column): a dict, or fastyaml's JobMarks (worked out on
    demand) for a long fast-read `jobs:` list."""

    @property
    def base_dir(self) -> Path:
        """The manifest's folder: relative paths (images, output, lock files) start here."""
        return self.path.resolve().parent

    @property
    def name(self) -> str:
        return str(self.data["name"])

    def locate(self, path: Sequence[str | int]) -> str:
        """`file:line:col` of the value at path, or of its nearest located parent."""
        p = tuple(path)
        while p and p not in self.marks:
            p = p[:-1]
        line, col = self.marks.get(p, (1, 1))
        return f"{self.path}:{line}:{col}"

    @property
    def lock_path(self) -> Path:
        """`x.yaml` -> `x.lock.yaml`, beside the manifest's real file: a symlink (or any other
        name for the same file) shares its lock, journal and run guard, so no job is bought
        twice because a manifest was named two ways."""
        real = Path(os.path.realpath(self.path))
        # the path as given when it already names the real file: messages stay as typed
        base = self.path if real == Path(os.path.abspath(self.path)) else real
        return base.with_name(real.name.rsplit(".", 1)[0] + ".lock.yaml")


_MERGE = "tag:yaml.org,2002:merge"
_PLAIN = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_Pair = tuple[yaml.Node, yaml.Node]


class _Builder:
    """Turns a composed YAML node graph into Python values, recording marks per path."""

    def __init__(self, source: str, limit: int) -> None:
        self.source = source
        self.limit = limit
        self.count = 0
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()  # collections being built: an alias to one is a cycle

    def where(self, node: yaml.Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def spend(self, n: int, node: yaml.Node) -> None:
        self.count += n
        if self.count > self.limit:
            raise ManifestError(
                f"the document expands to more than {self.limit:,} values "
                "(YAML aliases or merge keys nested too deep?)",
                where=self.where(node),
                hint="use fewer or shallower aliases (&anchor / *alias)",
            )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.spend(1, node)
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self.scalar(node)
        if node.tag not in _PLAIN:
            raise ManifestError(
                f"the YAML tag `{node.tag}` is not supported", where=self.where(node)
            )
        if id(node) in self.open:
            raise ManifestError(
                "an alias refers to a value that contains it", where=self.where(node)
            )
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def scalar(self, node: yaml.Node) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise ManifestError(
                f"cannot read this value: {exc.problem}", where=self.where(node)
            ) from None
        except ValueError:  # Python refuses int("…") past 4,300 digits (a DoS guard)
            raise ManifestError(
                "this number is too long to read (thousands of digits)",
                where=self.where(node),
                hint="quote it to keep it as text",
            ) from None
        if isinstance(value, str) and "\0" in value:  # no path may hold it: os calls raise
            raise ManifestError(
                "a NUL character (\\0) in a value", where=self.where(node), hint="remove it"
            )
        return value

    def key(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise ManifestError(
                "keys must be strings, got a list or mapping",
                where=self.where(node),
                hint="keys are plain words: `id: intro`",
            )
        key = self.scalar(node)
        if not isinstance(key, str):
            raise ManifestError(
                f"keys must be strings, got {repr(key)[:40]}",
                where=self.where(node),
                hint="quote the key",
            )
        return key

    def flatten(self, node: yaml.MappingNode, inside: frozenset[int]) -> list[_Pair]:
        """node's pairs with `<<` merge keys resolved, without changing the node (an alias may
        share it): merged pairs first, in rising precedence, then the mapping's own."""
        merged: list[_Pair] = []
        own: list[_Pair] = []
        for k, v in node.value:
            if k.tag != _MERGE:
                own.append((k, v))
                continue
            sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
            for src in reversed(sources):  # the first source listed takes precedence
                if not isinstance(src, yaml.MappingNode) or id(src) in inside:
                    raise ManifestError(
                        "bad merge key `<<`: it must name mappings that do not contain it",
                        where=self.where(src),
                        hint="`<<:` takes an alias to a mapping (`<<: *defaults`) or a list",
                    )
                merged.extend(self.flatten(src, inside | {id(node)}))
        self.spend(len(merged), node)  # merges can grow as fast as aliases
        return [*merged, *own]

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        pairs = self.flatten(node, frozenset())
        merged = len(pairs) - sum(1 for k, _ in node.value if k.tag != _MERGE)
        keys = [self.key(k) for k, _ in pairs]
        winner: dict[str, int] = {}  # an own key overrides a merged one but may not repeat
        for i, key in enumerate(keys):
            if i >= merged and winner.get(key, -1) >= merged:
                raise ManifestError(
                    f"duplicate key `{key}`",
                    where=self.where(pairs[i][0]),
                    hint="each key may appear once per mapping; remove or merge the other one",
                )
            winner[key] = i
        out: dict[str, Any] = {}
        for key in keys:
            if key not in out:
                knode, vnode = pairs[winner[key]]
                if isinstance(vnode, yaml.MappingNode | yaml.SequenceNode):
                    # a block starts on the next line; errors about it (an unknown key, a
                    # missing one) belong on the key's own line
                    self.marks[(*path, key)] = (
                        knode.start_mark.line + 1,
                        knode.start_mark.column + 1,
                    )
                out[key] = self.build(vnode, (*path, key))
        return out


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, tuple[int, int]]]:
    """Safe-load one YAML document, returning (value, marks). Errors carry file:line:col."""
    check_depth(text, source)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        if "nesting depth" in str(exc.problem):  # PyYAML >= 6.0.4 bounds depth in its parser
            raise _too_deep(where) from None
        raise ManifestError(
            f"YAML syntax error: {exc.problem or exc.context}",
            where=where,
            hint="check indentation and quoting near this line",
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"YAML error: {exc}", where=source) from None
    if node is None:
        return None, {}
    builder = _Builder(source, max(MAX_NODES, len(text)))
    try:
        return builder.build(node, ()), builder.marks
    except RecursionError:
        raise _too_deep(source) from None


_TOKEN = re.compile(r"[\[\]{}\n#\"']")
_QUOTED = {'"': re.compile(r'"(?:[^"\\]|\\.)*"', re.S), "'": re.compile(r"'(?:[^']|'')*'")}
_LINE = re.compile(r"( *)((?:-[ \t]+)*)")
_INDENT = re.compile(r" *")
_BLOCK_SCALAR = re.compile(r"[-:?][ \t]+[|>][0-9+-]*[ \t]*$")
"""`key: |`, `- >-`: the header of a block scalar, its comment cut off."""
_OPENS_SCALAR = frozenset(":,[{-?")
"""A quote after one of these (and spaces), or first on a line, starts a quoted scalar; any
other quote is part of a plain scalar (`it's`)."""


def check_depth(text: str, source: str, limit: int = MAX_DEPTH) -> None:
    """Refuse text nesting deeper than limit, before a YAML parser sees it. One linear pass:
    flow brackets outside quoted scalars, comments and block scalars, plus block levels (an
    indentation stack, one level per `- ` indicator). An estimate on the safe side of the
    parser's depth: a bracket inside a plain scalar counts, so the limit leaves room."""
    flow = 0
    block: list[int] = []
    pos = line_start = 0
    deepest = _block_levels(text, 0, block)
    while deepest + flow <= limit:
        m = _TOKEN.search(text, pos)
        if m is None:
            return
        at, pos, ch = m.start(), m.end(), m.group()
        if ch in "[{":
            flow += 1
        elif ch in "]}":
            flow = max(flow - 1, 0)
        elif ch == "\n" and flow == 0:
            if _block_header(text, line_start, at):
                pos = _skip_block_scalar(text, pos, line_start)
            line_start = at = pos
            deepest = _block_levels(text, pos, block)
        elif ch == "\n":
            line_start = pos
        elif ch == "#":
            if at == 0 or text[at - 1] in " \t\n":
                nl = text.find("\n", pos)
                pos = len(text) if nl < 0 else nl
        elif _starts_scalar(text, at):
            closed = _QUOTED[ch].match(text, at)
            if closed:  # an unclosed quote is left to the parser to report
                pos = closed.end()
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    raise _too_deep(f"{source}:{line}:{col}", limit)


def _block_header(text: str, start: int, end: int) -> bool:
    """Whether the line text[start:end] opens a block scalar (`key: |`)."""
    if text.find("|", start, end) < 0 and text.find(">", start, end) < 0:
        return False
    return _BLOCK_SCALAR.search(text[start:end].split(" #", 1)[0]) is not None


def _skip_block_scalar(text: str, pos: int, header: int) -> int:
    """Past the lines of a `|` or `>` scalar whose header line starts at header: blank lines and
    lines indented deeper than the header line (its text is not YAML structure)."""
    head = _INDENT.match(text, header)
    assert head is not None
    indent = len(head.group())
    while pos < len(text):
        m = _INDENT.match(text, pos)
        assert m is not None
        nl = text.find("\n", pos)
        blank = m.end() == len(text) or text[m.end()] in "\r\n"
        if not blank and len(m.group()) <= indent:
            break
        pos = len(text) if nl < 0 else nl + 1
    return pos


def _block_levels(text: str, pos: int, stack: list[int]) -> int:
    """Block nesting at the line starting at pos, updating the indentation stack."""
    m = _LINE.match(text, pos)
    assert m is not None  # both groups may be empty
    rest = text[m.end() : m.end() + 1]
    if not m.group(2) and rest in ("", "\n", "\r", "#"):
        return len(stack)  # blank or comment lines change nothing
    col = len(m.group(1))
    while stack and stack[-1] >= col:
        stack.pop()
    for i, ch in enumerate(m.group(2), col):
        if ch == "-":
            stack.append(i)
    stack.append(m.end() - pos)
    return len(stack)


def _starts_scalar(text: str, at: int) -> bool:
    i = at - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    return i < 0 or text[i] == "\n" or text[i] in _OPENS_SCALAR


def _too_deep(where: str, limit: int = MAX_DEPTH) -> ManifestError:
    return ManifestError(
        f"the document nests too deep (more than {limit} levels of lists and maps)",
        where=where,
        hint="flatten the nested lists or maps",
    )


def load(path: str | Path) -> Manifest:
    """Read, parse and schema-check a manifest file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            "manifest not found", where=str(p), hint="check the path; `ls manifests/`"
        ) from None
    except UnicodeDecodeError:
        raise _not_utf8(p) from None
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", where=str(p)) from None
    return loads(text, p)


def _not_utf8(p: Path) -> ManifestError:
    data = p.read_bytes()
    offset, line, col = utf8_damage(data) or (0, 1, 1)
    return ManifestError(
        f"the manifest is not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset} "
        "cannot be decoded",
        where=f"{p}:{line}:{col}",
        hint="save the file as UTF-8 (an editor's 'encoding' setting; `iconv -f latin1 -t utf-8`)",
    )


def loads(text: str, path: Path) -> Manifest:
    """A manifest from text (path is only for messages and relative paths)."""
    parsed = fastyaml.parse_fast(text, str(path), parse_yaml)  # a long `jobs:` list, quickly
    data, marks = parsed if parsed is not None else parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ManifestError(
            "a manifest must be a mapping with version, name, images and prompts",
            where=f"{path}:1:1",
            hint="start from manifests/quickstart.yaml",
        )
    manifest = Manifest(path=path, data=data, marks=marks)
    schemas.validate("manifest", data, locate=manifest.locate)
    return manifest
