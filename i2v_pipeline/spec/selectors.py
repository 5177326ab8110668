"""Selectors of `exclude:` and `include:` entries: which image x prompt x matrix combinations
an entry names (by image or prompt id glob, tag, or matrix value)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ManifestError
from .images import Image
from .manifest import Manifest
from .prompts import Prompt

SELECTOR_KEYS = ("image", "prompt", "tag")


def matches(
    selector: Mapping[str, Any], image: Image, prompt: Prompt, values: Mapping[str, Any]
) -> bool:
    """Whether the combination of image, prompt and matrix values is one selector names."""
    for key, want in selector.items():
        wants = want if isinstance(want, list) else [want]
        if key == "image":
            if not any(fnmatch.fnmatchcase(image.id, str(w)) for w in wants):
                return False
        elif key == "prompt":
            if not any(fnmatch.fnmatchcase(prompt.id, str(w)) for w in wants):
                return False
        elif key == "tag":
            if not set(map(str, wants)) & {*image.tags, *prompt.tags}:
                return False
        elif values.get(key, _MISSING) not in wants:
            return False
    return True


_MISSING = object()


def check_selectors(m: Manifest, keys: Sequence[str], section: str) -> None:
    """Refuse a selector key that is neither image, prompt, tag nor a matrix key."""
    allowed = {*SELECTOR_KEYS, *keys}
    for i, sel in enumerate(m.data.get(section, ())):
        for key in sel:
            if section == "exclude" and key not in allowed:
                raise ManifestError(
                    f"exclude key `{key}` is not image, prompt, tag or a matrix key",
                    where=m.locate((section, i, key)),
                    hint=f"matrix keys: {', '.join(keys) or '(none)'}",
                )


def tags_of(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """Tags of several sources, each once, in first-seen order."""
    return tuple(dict.fromkeys(t for g in groups for t in g))
