"""What a replaced job changes: attribute by attribute, old lock request against the new spec.

The plan pairs a spec whose fingerprint changed with the lock entry of the same job id, and
shows the pair as one `-/+ replace` line (terraform's forces-replacement) instead of an
unrelated `+ create` and `- orphan`. The lock's `request` text holds every attribute the
fingerprint covers, so the old values come from it with no extra lock field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..model import Change
from ..spec.expand import FIELDS

MANIFEST_NAMES = {canonical: name for name, canonical in FIELDS.items()}
"""The request's canonical keys back to the manifest's words (`video_length` -> `duration`)."""

CONTEXT = 12
"""Characters of unchanged text kept either side of where two long strings differ."""
LONG = 48
"""Strings longer than this are shown around their difference only."""


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    """Every attribute whose value differs, by its manifest name, sorted (absent is None)."""
    keys = sorted(set(old) | set(new), key=lambda k: MANIFEST_NAMES.get(k, k))
    return tuple(
        Change(MANIFEST_NAMES.get(k, k), old.get(k), new.get(k))
        for k in keys
        if old.get(k) != new.get(k)
    )


def describe(items: Sequence[Change]) -> str:
    """`prompt: "…pan…" → "…orbit…"; resolution: 720p → 1080p`."""
    return "; ".join(_one(c) for c in items)


def _one(c: Change) -> str:
    if isinstance(c.old, str) and isinstance(c.new, str):
        old, new = _window(c.old, c.new)
        return f"{c.field}: {_text(old)} → {_text(new)}"
    return f"{c.field}: {_value(c.old)} → {_value(c.new)}"


def _window(old: str, new: str) -> tuple[str, str]:
    """The differing middle of two strings with a little context, `…` where cut."""
    if len(old) <= LONG and len(new) <= LONG:
        return old, new
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    limit = min(len(old), len(new)) - head
    while tail < limit and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    start = max(head - CONTEXT, 0)
    if start:  # back to the start of a word: "…slow cinematic", not "…w cinematic"
        start = old.rfind(" ", 0, start) + 1
    return _cut(old, start, tail), _cut(new, start, tail)


def _cut(s: str, start: int, tail: int) -> str:
    end = len(s) - max(tail - CONTEXT, 0)
    space = s.find(" ", end)  # on to the end of a word
    end = len(s) if space == -1 or end == len(s) else space
    return ("…" if start else "") + s[start:end] + ("…" if end < len(s) else "")


def _text(s: str) -> str:
    """Bare when a single word (`720p`), quoted when it has spaces or is empty."""
    if s and not any(ch.isspace() or ch in "\"'" for ch in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v: Any) -> str:
    if v is None:
        return "(unset)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Mapping):
        if "sha256" in v:
            return f"sha256:{str(v['sha256'])[:12]}"
        if "url" in v:
            return str(v["url"])
    if isinstance(v, str):
        return _text(v)
    return str(v)
