"""Fingerprints: sha256 over the canonical JSON of everything that changes the video.

In it: provider, endpoint kind, the request fields as sent, and the identity of each input
image (content hash for local files; URL, or its `sha256:` pin, for URLs). Not in it: the job id,
output path, tags, webhook URL. Moving where a file is written must never cost credits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .model import JobSpec

PROVIDER = "akool"
ENDPOINT_KIND = "image2video.batch"
CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint_payload(spec: JobSpec) -> dict[str, Any]:
    return {
        "provider": PROVIDER,
        "endpoint": ENDPOINT_KIND,
        "image": spec.image.identity(),
        "last_frame": spec.last_frame.identity() if spec.last_frame else None,
        "request": spec.request,
    }


def fingerprint(spec: JobSpec) -> str:
    return hashlib.sha256(canonical_json(fingerprint_payload(spec))).hexdigest()


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
