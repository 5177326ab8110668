"""Load a manifest file: safe YAML with line/column for every value, then the schema.

This is the only module that reads manifest files. YAML is composed into nodes (C loader when
available), then built into plain Python values while recording where each value came from, so
every later error can say `file:line:column`. Aliases are allowed but their expansion is
bounded: a "billion laughs" document is an error, not an out-of-memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError, utf8_damage
from . import validation as schemas

try:  # the C composer is ~10x faster on large manifests
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES = 200_000
"""Upper bound on values built from one document, aliases expanded: the larger of this and the
document's length in characters, which no alias-free document can reach (each value takes at
least two characters), so only alias expansion ("billion laughs") ever hits it."""

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Manifest:
    """A loaded, schema-valid manifest. data is plain JSON-like Python."""

    path: Path
    data: dict[str, Any]
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict, repr=False)

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
        """`x.yaml` -> `x.lock.yaml`, beside the manifest."""
        return self.path.with_name(self.path.name.rsplit(".", 1)[0] + ".lock.yaml")


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


def _too_deep(where: str) -> ManifestError:
    return ManifestError(
        "the document nests too deep", where=where, hint="flatten the nested lists or maps"
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
    data, marks = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ManifestError(
            "a manifest must be a mapping with version, name, images and prompts",
            where=f"{path}:1:1",
            hint="start from manifests/quickstart.yaml",
        )
    manifest = Manifest(path=path, data=data, marks=marks)
    schemas.validate("manifest", data, locate=manifest.locate)
    return manifest
