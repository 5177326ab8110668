"""`i2v init [DIR]`: a starter manifest for the images in a folder, ready to plan and run.

It is written for a newcomer's first hour: every image listed with an id from its file name,
one example prompt, the free emulator as endpoint and the real API's settings commented out,
and the `yaml-language-server` modeline that makes editors validate and complete the file.
"""

from __future__ import annotations

import json
import shlex
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import click

from ..errors import UsageError
from ..spec.templating import slug
from ..text import plural
from .logs import output_options

SCHEMA_URL = (
    "https://raw.githubusercontent.com/i2v-pipeline/i2v-pipeline/main/schemas/manifest.schema.json"
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SKIP_DIRS = ("out",)
"""Not scanned for images: the default output folder (renders' thumbnails are not inputs)."""

HEADER = """\
# yaml-language-server: $schema={schema}
# Written by `i2v init`. Next: `i2v plan {manifest}`, then `i2v run {manifest}` (on the
# emulator: free, no API key). The format: docs/manifest.md; offline editors: see the README.
version: 1
name: {name}
provider:
  endpoint: emulator   # the AKOOL emulator, in-process: small test videos, no credits
  # The real API: export AKOOL_API_KEY=... (never in this file) and, instead of the line above:
  # endpoint: akool
  # image_base_url: "https://cdn.example.com/{name}/"   # where these images are published
defaults:
  model: AkoolImage2VideoFastV1
  resolution: 720p
  duration: 5
images:
"""
FOOTER = """\
prompts:
  - id: example
    template: "Slow dolly-in on the {{{{ image.id }}}}, soft light, cinematic"
output:
  dir: out
  path: "{{{{ image.id }}}}/{{{{ prompt.id }}}}.mp4"
"""


def find_images(folder: Path) -> list[PurePosixPath]:
    """Image files under folder (relative, sorted), hidden and output folders skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if any(p.startswith(".") for p in rel.parts) or rel.parts[0] in SKIP_DIRS:
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(rel)
    return found


def name_slug(text: str) -> str:
    """A file or folder name as an id: accents folded (`Été` -> `Ete`), then slug's rules."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return slug(folded)


def image_ids(paths: Sequence[PurePosixPath]) -> list[str]:
    """An id per image from its file name; a clash gets -2, -3, … (ids must be unique, and
    differ in more than case: they name output files, and some file systems ignore case)."""
    ids: list[str] = []
    seen: set[str] = set()
    for p in paths:
        base = name_slug(p.stem)
        candidate, n = base, 1
        while candidate.casefold() in seen:
            n += 1
            candidate = f"{base}-{n}"
        ids.append(candidate)
        seen.add(candidate.casefold())
    return ids


def starter_manifest(name: str, manifest: str, paths: Sequence[PurePosixPath]) -> str:
    """The manifest text `init` writes."""
    lines = [HEADER.format(schema=SCHEMA_URL, manifest=manifest, name=name)]
    for image_id, p in zip(image_ids(paths), paths, strict=True):
        lines.append(f"  - id: {image_id}\n    path: {json.dumps(str(p))}\n")
    lines.append(FOOTER.format())
    return "".join(lines)


@click.command("init")
@click.argument("folder", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("--name", help="Campaign name and file name (default: the folder's name).")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest of that name.")
@output_options()
def init_cmd(folder: str, name: str | None, force: bool) -> None:
    """Write a starter manifest for the images in FOLDER (default: here): NAME.yaml with an id
    per image, one example prompt, the free emulator endpoint and the real API's settings
    commented out. Editors with the YAML language server validate and complete it."""
    base = Path(folder)
    name = name_slug(name or base.resolve().name or "campaign")
    target = base / f"{name}.yaml"
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists", hint="pick another --name, or --force to overwrite it"
        )
    paths = find_images(base)
    if not paths:
        raise UsageError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {base}",
            hint="run it in (or name) the folder that holds your images",
        )
    target.write_text(starter_manifest(name, str(target), paths), encoding="utf-8")
    click.echo(
        f"Wrote {target}: {plural(len(paths), 'image')}, 1 example prompt, on the emulator.\n"
        f"Next: i2v plan {shlex.quote(str(target))}"
    )
