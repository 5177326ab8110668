"""How big a manifest is before it is expanded: a matrix typo (or an attack) must be an error
within a second, not minutes of expansion and gigabytes of memory. The count is an upper bound:
images x prompts x matrix combinations, what each include matches, the explicit jobs."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from typing import Any

from ..errors import ManifestError
from .images import Image
from .manifest import Manifest
from .prompts import Prompt
from .settings import MAX_JOBS


def job_count(manifest: Manifest, images: Sequence[Image], prompts: Sequence[Prompt]) -> int:
    """How many jobs expanding makes, at most (exclude may drop some), counted without
    expanding: images x prompts x matrix combinations, what each include matches, explicit jobs."""
    data = manifest.data
    combos = math.prod(len(v) for v in data.get("matrix", {}).values())
    total = len(images) * len(prompts) * combos + len(data.get("jobs", ()))
    for inc in data.get("include", ()):
        ims = [im for im in images if _picked(inc.get("image"), im.id)]
        ps = [p for p in prompts if _picked(inc.get("prompt"), p.id)]
        if "tag" not in inc:
            total += len(ims) * len(ps)
            continue
        tags = set(map(str, inc["tag"] if isinstance(inc["tag"], list) else [inc["tag"]]))
        a = sum(1 for im in ims if tags & set(im.tags))
        b = sum(1 for p in ps if tags & set(p.tags))
        total += a * len(ps) + len(ims) * b - a * b  # pairs where either side has the tag
    return total


def _picked(want: Any, name: str) -> bool:
    wants = want if isinstance(want, list) else [want]
    return want is None or any(fnmatch.fnmatchcase(name, str(w)) for w in wants)


def check_size(manifest: Manifest, images: Sequence[Image], prompts: Sequence[Prompt]) -> None:
    """Refuse, before building any job, a manifest that expands past limits.max_jobs: a matrix
    typo must be an error within a second, not minutes of expansion and gigabytes of memory."""
    cap = int(manifest.data.get("limits", {}).get("max_jobs", MAX_JOBS))
    count = job_count(manifest, images, prompts)
    if count <= cap:
        return
    matrix = manifest.data.get("matrix", {})
    combos = math.prod(len(v) for v in matrix.values())
    raise ManifestError(
        f"the manifest expands to {count:,} jobs ({len(images):,} image(s) x "
        f"{len(prompts):,} prompt(s) x {combos:,} matrix combination(s), plus includes and "
        f"jobs), more than limits.max_jobs ({cap:,})",
        where=manifest.locate(("matrix",) if matrix else ("images",)),
        hint="shorten the matrix lists, or raise limits.max_jobs if you mean it",
    )
