"""Resolve a manifest's `images:` into ImageRefs: local paths (hashed by content), globs
(sorted, one image per file, ids from file stems) and URLs (keyed by URL or a `sha256:` pin)."""

from __future__ import annotations

import glob as globlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ManifestError
from ..model import ImageRef
from .manifest import Manifest
from .templating import slug

Hasher = Callable[[Path], str]
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Image:
    id: str
    ref: ImageRef
    tags: tuple[str, ...]
    vars: Mapping[str, Any]
    fields: Mapping[str, Any]


def local_ref(manifest: Manifest, raw: str, loc: Loc, hasher: Hasher, what: str) -> ImageRef:
    path = (manifest.base_dir / raw).resolve()
    if not path.is_file():
        raise ManifestError(
            f"{what} not found: {raw} (looked in {path})",
            where=manifest.locate(loc),
            hint="paths are relative to the manifest's folder",
        )
    return ImageRef("path", str(path), raw, hasher(path))


def url_ref(url: str, pin: str | None) -> ImageRef:
    return ImageRef("url", url, url, pin.removeprefix("sha256:") if pin else None)


def resolve_images(manifest: Manifest, hasher: Hasher) -> list[Image]:
    out: list[Image] = []
    seen: dict[str, Loc] = {}
    for i, entry in enumerate(manifest.data["images"]):
        loc: Loc = ("images", i)
        tags = tuple(entry.get("tags", ()))
        vars_, fields = entry.get("vars", {}), entry.get("fields", {})
        found: list[tuple[str, ImageRef]] = []
        if "glob" in entry:
            base = manifest.base_dir
            matches = sorted(globlib.glob(entry["glob"], root_dir=base, recursive=True))
            files = [m for m in matches if (base / m).is_file()]
            if not files:
                raise ManifestError(
                    f"glob `{entry['glob']}` matches no files in {base}",
                    where=manifest.locate((*loc, "glob")),
                    hint="globs are relative to the manifest's folder; check the pattern",
                )
            prefix = entry.get("id", "")
            for m in files:
                image_id = f"{prefix}{slug(PurePosixPath(m).stem)}"
                found.append((image_id, local_ref(manifest, m, loc, hasher, "image")))
        elif "path" in entry:
            ref = local_ref(manifest, entry["path"], (*loc, "path"), hasher, "image")
            found.append((entry.get("id") or slug(PurePosixPath(entry["path"]).stem), ref))
        else:
            url = entry["url"]
            default_id = slug(PurePosixPath(url.split("?", 1)[0]).stem)
            found.append((entry.get("id") or default_id, url_ref(url, entry.get("sha256"))))
        for image_id, ref in found:
            if image_id in seen:
                raise ManifestError(
                    f"duplicate image id `{image_id}` (also at {manifest.locate(seen[image_id])})",
                    where=manifest.locate(loc),
                    hint="give one of them an `id:`",
                )
            seen[image_id] = loc
            out.append(Image(image_id, ref, tags, vars_, fields))
    return out
