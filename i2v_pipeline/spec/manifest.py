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

from ..errors import ManifestError
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
        return self.path.with_name(self.path.name.rsplit(".", 1)[0] + ".lock.yaml")


class _Builder:
    """Turns a composed YAML node graph into Python values, recording marks per path."""

    def __init__(self, source: str, limit: int) -> None:
        self.source = source
        self.limit = limit
        self.count = 0
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    def where(self, node: yaml.Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise ManifestError(
                f"the document expands to more than {self.limit:,} values "
                "(YAML aliases nested too deep?)",
                where=self.where(node),
                hint="use fewer or shallower aliases (&anchor / *alias)",
            )
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise ManifestError(
                f"cannot read this value: {exc.problem}", where=self.where(node)
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<: *defaults` merge keys
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ManifestError(
                    f"keys must be strings, got {key!r}",
                    where=self.where(key_node),
                    hint="quote the key",
                )
            if key in out:
                raise ManifestError(
                    f"duplicate key `{key}`",
                    where=self.where(key_node),
                    hint="each key may appear once per mapping; remove or merge the other one",
                )
            out[key] = self.build(value_node, (*path, key))
        return out


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, tuple[int, int]]]:
    """Safe-load one YAML document, returning (value, marks). Errors carry file:line:col."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
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
    return builder.build(node, ()), builder.marks


def load(path: str | Path) -> Manifest:
    """Read, parse and schema-check a manifest file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            "manifest not found", where=str(p), hint="check the path; `ls manifests/`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", where=str(p)) from None
    return loads(text, p)


def loads(text: str, path: Path) -> Manifest:
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
