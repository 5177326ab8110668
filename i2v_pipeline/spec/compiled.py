"""Compiled schema checks (fastjsonschema), their code cached on disk by what it was made from.

Generating and compiling the checks of the four bundled schemas costs 0.1-0.15 s, paid by every
`i2v` start that validates (`plan`, a no-op `run`). The compiled code object is kept beside
the package, in its `__pycache__/`, where Python keeps i2v's own bytecode: whoever can write
there can already change i2v's code, so the cache trusts nothing new. (Never the user's cache
folder: CI systems share and restore that between jobs, and code read from it would run.)
It is keyed by a hash of the schema, the fastjsonschema and Python versions: a changed schema
or an upgrade is a new key, never a stale check. An unreadable, damaged or unwritable cache
(a read-only install) only costs the compile it would have saved.
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

FORMAT = 1
"""Bumped when what a cache file holds changes."""


def compile_check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema.compile(schema), from the disk cache when it holds it."""
    tag = f"{FORMAT}/{fastjsonschema.VERSION}/{sys.implementation.cache_tag}/{sys.version}"
    key = hashlib.sha256(tag.encode() + b"\0" + canonical_json(schema)).hexdigest()
    path = cache_dir() / f"schema-check-{key[:32]}.marshal"
    check = _load(path)
    if check is None:
        check = fastjsonschema.compile(schema)
        _store(path, check.__name__, fastjsonschema.compile_to_code(schema))
    return check


def cache_dir() -> Path:
    """Where compiled checks are kept: the package's own bytecode folder."""
    return Path(__file__).resolve().parent / "__pycache__"


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
