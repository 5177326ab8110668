"""A manifest's `prompts:` compiled once: each template parsed in the sandbox, with its tags,
variables and request fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ManifestError
from .images import Loc
from .manifest import Manifest
from .simple import Template
from .templating import compile_template


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt of a manifest: its compiled template plus tags, vars and fields."""

    id: str
    template: Template
    loc: Loc
    tags: tuple[str, ...]
    vars: Mapping[str, Any]
    fields: Mapping[str, Any]


def resolve_prompts(manifest: Manifest) -> list[Prompt]:
    """The manifest's `prompts:` compiled; ids must be unique."""
    out: list[Prompt] = []
    seen: set[str] = set()
    for i, entry in enumerate(manifest.data.get("prompts", ())):
        loc: Loc = ("prompts", i, "template")
        if entry["id"] in seen:
            raise ManifestError(
                f"duplicate prompt id `{entry['id']}`", where=manifest.locate(("prompts", i))
            )
        seen.add(entry["id"])
        template = compile_template(
            entry["template"], manifest.locate(loc), what=f"prompt {entry['id']}"
        )
        out.append(
            Prompt(
                entry["id"],
                template,
                loc,
                tuple(entry.get("tags", ())),
                entry.get("vars", {}),
                entry.get("fields", {}),
            )
        )
    return out
