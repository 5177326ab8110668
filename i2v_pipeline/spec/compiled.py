"""Compiled schema checks (fastjsonschema), their code cached on disk by what it was made from.

Generating and compiling the checks of the four bundled schemas costs 0.1-0.15 s, paid by every
`i2v` start that validates (`plan`, a no-op `run`). The compiled code object is kept in the
user's cache (`$XDG_CACHE_HOME/i2v/schemas/`), keyed by a hash of the schema, the fastjsonschema
and Python versions: a changed schema or an upgrade is a new key, never a stale check. An
unreadable, damaged or unwritable cache only costs the compile it would have saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema

from ..canonical import canonical_json
from .catalog import cache_root

FORMAT = 1
"""Bumped when what a cache file holds changes."""


def compile_check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema.compile(schema), from the disk cache when it holds it."""
    tag = f"{FORMAT}/{fastjsonschema.VERSION}/{sys.implementation.cache_tag}/{sys.version}"
    key = hashlib.sha256(tag.encode() + b"\0" + canonical_json(schema)).hexdigest()
    try:
        path = cache_root() / "schemas" / f"{key[:32]}.marshal"
    except RuntimeError:  # no home folder to cache in
        return fastjsonschema.compile(schema)
    check = _load(path)
    if check is None:
        check = fastjsonschema.compile(schema)
        _store(path, check.__name__, fastjsonschema.compile_to_code(schema))
    return check


def _load(path: Path) -> Callable[[Any], Any] | None:
    try:
        name, code = marshal.loads(path.read_bytes())
        namespace: dict[str, Any] = {}
        exec(code, namespace)  # our own generated code, from the user's own cache
        check = namespace[name]
    except Exception:  # missing, damaged, from another version: compile afresh
        return None
    return check if callable(check) else None


def _store(path: Path, name: str, source: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        data = marshal.dumps((name, compile(source, f"<schema check {name}>", "exec")))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)  # whole or not at all: a reader never sees half a file
    except (OSError, ValueError):  # a read-only home, a full disk: no cache, no harm
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
