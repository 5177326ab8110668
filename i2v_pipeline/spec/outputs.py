"""Where a manifest's videos go, and what they may never replace: output.dir stays inside the
manifest's folder, output paths inside output.dir, and no output names the manifest's own files,
any YAML file (another manifest, a lockfile) or an input image.

These are the checks the specs alone allow (`validate`, `plan`); the run's pre-flight repeats
them on real paths, with symlinks followed, and refuses files already there that the lock does
not own (run/preflight.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ManifestError
from ..model import ImageRef
from .manifest import Manifest

OUTPUT_HINT = "output paths are relative to output.dir and may not leave it"


def output_folder(manifest: Manifest, raw: str) -> Path:
    """output.dir, which must stay inside the manifest's folder (written files are replaced)."""
    text = raw.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in text.split("/"):
        raise ManifestError(
            f"output.dir {raw!r} leaves the manifest's folder",
            where=manifest.locate(("output", "dir")),
            hint="use a relative folder without `..`, e.g. `out`",
        )
    if "\0" in text or _too_long(text):
        raise ManifestError(
            f"output.dir {raw[:80]!r}... is not a usable folder name",
            where=manifest.locate(("output", "dir")),
            hint=f"no NUL, and at most {NAME_MAX - 16} bytes per folder name",
        )
    return manifest.base_dir / text


NAME_MAX = 255
"""Bytes per file or folder name on common file systems (ext4, APFS, NTFS in characters)."""


def _too_long(path: str) -> bool:
    """A name in path longer than NAME_MAX (with room for the `.part` temp file's prefix and
    suffix): refused up front, since the OS would refuse it only after the video was bought."""
    if len(path) <= (NAME_MAX - 16) // 4:  # a character is at most 4 bytes of UTF-8
        return False
    return any(len(p.encode("utf-8", "surrogatepass")) > NAME_MAX - 16 for p in path.split("/"))


def reserved_outputs(manifest: Manifest, output_dir: Path) -> dict[str, str]:
    """The manifest's own files as output paths relative to output_dir (casefolded), so a
    template cannot name them. Symlinked folders are caught at pre-flight on real paths."""
    lock = manifest.lock_path.name
    names = {
        manifest.path.name: "the manifest",
        os.path.basename(os.path.realpath(manifest.path)): "the manifest",
        lock: "the lockfile",
        f"{lock}.journal": "the lock's journal",
        f"{lock}.run": "the run lock",
    }
    if output_dir != manifest.base_dir:  # a subfolder: only `..` (refused) could name them
        return {}
    return {name.casefold(): what for name, what in names.items()}


def protected_name(path: str) -> str | None:
    """What a file at path is when no output may replace it whatever its folder: YAML files
    (manifests, lockfiles) and the journals and run locks beside them; None otherwise."""
    if path.endswith(".mp4"):  # the usual output: neither YAML nor a journal or run lock
        return None
    name = path.rpartition("/")[2].casefold()
    stem, dot, ext = name.rpartition(".")
    if dot and ext in ("yaml", "yml"):
        return "a YAML file (a manifest or a lockfile)"
    if dot and ext in ("journal", "run") and stem.endswith((".yaml", ".yml")):
        return "a lockfile's journal" if ext == "journal" else "a run lock"
    return None


def confine(rendered: str, *, where: str, job_id: str) -> str:
    """A rendered output path, normalised, that cannot leave the output folder."""
    if _plain(rendered):
        return rendered
    text = rendered.replace("\\", "/").strip()
    if "\0" in text:  # a template can render one; no file name may hold it
        raise ManifestError(
            f"job {job_id}: output path {rendered!r} holds a NUL character",
            where=where,
            hint=OUTPUT_HINT,
        )
    if not text or text.endswith("/"):
        raise ManifestError(
            f"job {job_id}: output path {rendered!r} names no file", where=where, hint=OUTPUT_HINT
        )
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ManifestError(
            f"job {job_id}: output path {rendered!r} is absolute", where=where, hint=OUTPUT_HINT
        )
    if _too_long(text):
        raise ManifestError(
            f"job {job_id}: output path {rendered[:80]!r}... has a name longer than the file "
            f"system allows",
            where=where,
            hint=f"keep every file and folder name under {NAME_MAX - 16} bytes",
        )
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ManifestError(
            f"job {job_id}: output path {rendered!r} climbs out of the output folder with `..`",
            where=where,
            hint=OUTPUT_HINT,
        )
    return "/".join(parts)


def _plain(path: str) -> bool:
    """path is already a short, normalised relative path (the usual `a/b.mp4`): confine would
    return it unchanged, so its checks are skipped (a hidden name, `.`, `..` never pass)."""
    return (
        0 < len(path) <= (NAME_MAX - 16) // 4
        and path[0] not in "/."
        and path[-1] not in "/."
        and not path[0].isspace()  # what str.strip would remove
        and not path[-1].isspace()
        and path[1:2] != ":"
        and "\\" not in path
        and "\0" not in path
        and "//" not in path
        and "/." not in path
    )


def check_protected(path: str, reserved: Mapping[str, str], *, where: str, job_id: str) -> None:
    """Refuse a confined output path naming the manifest's own files (reserved, casefolded) or
    any file protected_name names."""
    what = reserved.get(path.casefold()) if reserved else None
    hint = "the manifest, its lock and journal are not outputs; change output.path"
    if what is None:
        what = protected_name(path)
        hint = "outputs are videos: end output.path in `.mp4`"
    if what:
        raise ManifestError(
            f"job {job_id}: output path {path!r} would overwrite {what}", where=where, hint=hint
        )


def input_files(refs: Iterable[ImageRef | None], base: Path) -> dict[str, str]:
    """Local input images (as resolved, and as written) by casefolded absolute path -> display."""
    out: dict[str, str] = {}
    for ref in refs:
        if ref is not None and ref.kind == "path":
            out[ref.value.casefold()] = ref.display
            out[os.path.normpath(os.path.join(base, ref.display)).casefold()] = ref.display
    return out


def input_clash(
    output_dir: Path, outputs: Mapping[str, str], inputs: Mapping[str, str]
) -> tuple[str, str] | None:
    """(job id, image) for the first output (casefolded path relative to output_dir -> job id)
    that is an input image; None when no output is."""
    top = str(output_dir).casefold()
    for path, display in inputs.items():
        rel = os.path.relpath(path, top)
        if rel.startswith(".."):
            continue
        job_id = outputs.get(Path(rel).as_posix())
        if job_id is not None:
            return job_id, display
    return None
