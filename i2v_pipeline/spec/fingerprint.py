"""Fingerprints: sha256 over the canonical JSON of everything that changes the video.

In it: provider, endpoint kind, the request fields as sent, and the identity of each input
image (content hash for local files; URL, or its `sha256:` pin, for URLs). Not in it: the job id,
output path, tags, webhook URL. Moving where a file is written must never cost credits.

JobSpec.request is the canonical, versioned hash form of a job, not a wire body: its keys (which
happen to be AKOOL's field names: model_name, video_length, count, ...) and this payload's
layout are frozen, because every lockfile records fingerprints made from them. Renaming a key
would make every existing lock stale. A provider maps the canonical form to its own wire format
(run/providers/akool.py); tests/test_fingerprint.py pins one fingerprint to its hex value.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..canonical import canonical_json
from ..model import ImageRef, JobSpec

PROVIDER = "akool"
ENDPOINT_KIND = "image2video.batch"
CHUNK = 1 << 20


def fingerprint_of(image: ImageRef, last_frame: ImageRef | None, request: Mapping[str, Any]) -> str:
    """The fingerprint of a request on these images (see the module docstring).

    The canonical JSON of {"endpoint", "image", "last_frame", "provider", "request"} (keys
    sorted), spelled piece by piece: the same bytes without building the payload dict, and the
    part before the request spelled once per pair of images (a thousand jobs share one)."""
    return hashlib.sha256(
        b"".join((_prefix(image, last_frame), canonical_json(request), b"}"))
    ).hexdigest()


@functools.lru_cache(maxsize=4096)
def _prefix(image: ImageRef, last_frame: ImageRef | None) -> bytes:
    """The payload's bytes up to its request: they depend on the images alone."""
    lf = canonical_json(last_frame.identity()) if last_frame else b"null"
    return b"".join((_HEAD, canonical_json(image.identity()), b',"last_frame":', lf, _MID))


_HEAD = b'{"endpoint":' + canonical_json(ENDPOINT_KIND) + b',"image":'
_MID = b',"provider":' + canonical_json(PROVIDER) + b',"request":'


def fingerprint(spec: JobSpec) -> str:
    """The fingerprint of spec: the key of its lock entry."""
    return fingerprint_of(spec.image, spec.last_frame, spec.request)


def hash_file(path: str | Path) -> str:
    """sha256 of a file's content, streamed so a large file never sits in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FileHasher:
    """hash_file with a per-process cache: a thousand jobs on one image hash it once."""

    def __init__(self) -> None:
        self._cache: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        digest = self._cache.get(path)
        if digest is None:
            digest = self._cache[path] = hash_file(path)
        return digest
