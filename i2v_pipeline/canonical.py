"""The one JSON encoder for what i2v hashes and records: requests, journal records, lock lines.

One function so the spelling of a request is decided in one place: a fingerprint, a journal
line and a lockfile line that disagreed on it would make a job look changed (and bought again).
Every variant is UTF-8 (no `\\u` escapes for non-ASCII) and deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_STDLIB: dict[tuple[bool, bool], Callable[[Any], str]] = {
    (sort_keys, spaced): json.JSONEncoder(
        ensure_ascii=False,
        sort_keys=sort_keys,
        separators=(", ", ": ") if spaced else (",", ":"),
    ).encode
    for sort_keys in (True, False)
    for spaced in (True, False)
}


def canonical_json(obj: Any, *, sort_keys: bool = True, spaced: bool = False) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes.

    The default (hashed into fingerprints) is byte-identical to
    json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) for the strings,
    integers, booleans and nulls a request holds (a property test pins this), and ~6x faster.
    Requests hold no floats, whose spelling the two libraries differ on.

    sort_keys=False keeps the writer's key order (journal records, lock lines: fixed by their
    writer). Compact, it is orjson too (5 journal lines a job): the same bytes as the standard
    library but for a float's exponent (`1e16`, not `1e+16`), which parses back the same and
    is hashed nowhere. spaced=True writes `, ` and `: ` (the lockfile, read by people and diffed
    in pull requests): the standard library, whose spelling of floats existing locks hold."""
    if not spaced:
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else None)
        except TypeError:  # e.g. an integer beyond 64 bits: the standard library copes
            pass
    return _STDLIB[sort_keys, spaced](obj).encode()
