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
    """One input image of a manifest: its identity plus the tags, vars and fields it brings."""

    id: str
    ref: ImageRef
    tags: tuple[str, ...]
    vars: Mapping[str, Any]
    fields: Mapping[str, Any]
    loc: Loc = ()
    """Its `images:` entry, so an error about one of its fields can point there."""


OUTSIDE_HINT = (
    "keep images inside the manifest's folder (a manifest from a pull request must not read "
    "other files), or set `allow_outside: true` on this images entry"
)


def is_inside(path: Path, folder: Path) -> bool:
    """Whether path (already resolved: symlinks followed) lies in folder (resolved too)."""
    return path == folder or path.is_relative_to(folder)


def local_ref(
    manifest: Manifest,
    raw: str,
    loc: Loc,
    hasher: Hasher,
    what: str,
    allow_outside: bool = False,
) -> ImageRef:
    """An ImageRef for a local path (hashed), confined to the manifest's folder unless allowed."""
    path = (manifest.base_dir / raw).resolve()
    if not allow_outside and not is_inside(path, manifest.base_dir):
        # resolve() followed symlinks, so a link inside the folder pointing out is caught too
        raise ManifestError(
            f"{what} {raw} is outside the manifest's folder ({path})",
            where=manifest.locate(loc),
            hint=OUTSIDE_HINT,
        )
    if not is_file(path):
        raise ManifestError(
            f"{what} not found: {raw} (looked in {path})",
            where=manifest.locate(loc),
            hint="paths are relative to the manifest's folder",
        )
    return ImageRef("path", str(path), raw, hasher(path))


def is_file(path: Path) -> bool:
    """Path.is_file, but a name the OS cannot even look up (too long) is simply not a file."""
    try:
        return path.is_file()
    except OSError:
        return False


def url_ref(url: str, pin: str | None) -> ImageRef:
    """An ImageRef for a URL, with its optional `sha256:` pin."""
    return ImageRef("url", url, url, pin.removeprefix("sha256:") if pin else None)


def resolve_images(manifest: Manifest, hasher: Hasher) -> list[Image]:
    """The manifest's `images:` entries, globs expanded, as Images; ids must be unique."""
    out: list[Image] = []
    seen: dict[str, Loc] = {}
    for i, entry in enumerate(manifest.data["images"]):
        loc: Loc = ("images", i)
        tags = tuple(entry.get("tags", ()))
        vars_, fields = entry.get("vars", {}), entry.get("fields", {})
        found: list[tuple[str, ImageRef]] = []
        outside = bool(entry.get("allow_outside", False))
        if "glob" in entry:
            base = manifest.base_dir
            _check_glob(manifest, entry["glob"], (*loc, "glob"), outside)
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
                ref = local_ref(manifest, m, (*loc, "glob"), hasher, "image", outside)
                found.append((image_id, ref))
        elif "path" in entry:
            ref = local_ref(manifest, entry["path"], (*loc, "path"), hasher, "image", outside)
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
            out.append(Image(image_id, ref, tags, vars_, fields, loc))
    return out


def _check_glob(manifest: Manifest, pattern: str, loc: Loc, allow_outside: bool) -> None:
    """A glob may not climb out (`..`, absolute); matches through symlinks are checked per file."""
    parts = pattern.replace("\\", "/").split("/")
    if allow_outside or (not pattern.startswith("/") and ".." not in parts):
        return
    raise ManifestError(
        f"glob `{pattern}` reaches outside the manifest's folder",
        where=manifest.locate(loc),
        hint=OUTSIDE_HINT,
    )
