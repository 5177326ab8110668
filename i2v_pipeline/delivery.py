"""From a finished job to verified files: download (re-querying an expired URL once) or, when
only the output path changed, copy the file already held. Each file lands with a `downloaded`
journal record; nothing here talks to the API except through `requery`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from .download import Downloaded, copy_into_place, fetch
from .errors import DownloadError, ExpiredResultError
from .journal import Entries
from .journal import record as journal_record
from .model import JobSpec

Requery = Callable[[str], Awaitable[str | None]]
"""A remote id -> a fresh result URL (or None)."""


class Delivery:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_dir: Path,
        prefix: str,
        entries: Entries,
        record: Callable[[dict[str, Any]], None],
        requery: Requery,
        concurrent: int,
        timeout: float,
    ) -> None:
        self.session, self.base_dir, self.prefix = session, base_dir, prefix
        self.entries, self.record, self.requery = entries, record, requery
        self.slots = anyio.Semaphore(concurrent)
        self.timeout = timeout

    def rel_paths(self, spec: JobSpec) -> list[str]:
        """Output paths relative to the manifest's folder, as the lock records them."""
        return [f"{self.prefix}/{p}" if self.prefix != "." else p for p in spec.output_paths()]

    def _downloaded(self, fp: str, i: int, rel: str, got: Downloaded) -> None:
        self.record(
            journal_record("downloaded", fp, i=i, path=rel, sha256=got.sha256, bytes=got.bytes)
        )

    async def download(self, spec: JobSpec, ids: Sequence[str], urls: Sequence[str | None]) -> None:
        """Every variant not already in place; DownloadError if one cannot be had."""
        fp = spec.fingerprint
        async with self.slots:
            for i, rel in enumerate(self.rel_paths(spec)):
                held = self.entries[fp].files
                rec = held[i] if i < len(held) else None
                target = self.base_dir / rel
                if (
                    rec
                    and rec.path == rel
                    and target.is_file()
                    and target.stat().st_size == rec.bytes
                ):
                    continue
                if i >= min(len(ids), len(urls)):  # a create that answered fewer ids than asked
                    raise DownloadError(
                        f"the API returned {len(ids)} video id(s) for {spec.variants} variant(s)"
                    )
                got = await self._fetch(spec, ids[i], urls[i], target)
                self._downloaded(fp, i, rel, got)

    async def _fetch(self, spec: JobSpec, rid: str, url: str | None, target: Path) -> Downloaded:
        seconds = spec.request.get("video_length")
        resolution = spec.request.get("resolution")
        for again in (False, True):
            if url is None:
                raise DownloadError("the result has no video URL")
            try:
                return await fetch(
                    self.session,
                    url,
                    target,
                    seconds=seconds,
                    resolution=resolution,
                    timeout=self.timeout,
                )
            except ExpiredResultError:
                if again:
                    raise
                url = await self.requery(rid)  # result URLs expire: ask once for a fresh one
        raise AssertionError("unreachable")  # pragma: no cover

    async def relocate(self, spec: JobSpec) -> None:
        """Copy (never move: the old path may be another job's) to the new output path."""
        fp = spec.fingerprint
        for i, rel in enumerate(self.rel_paths(spec)):
            held = self.entries[fp].files
            rec = held[i] if i < len(held) else None
            if rec is None or rec.path == rel:
                continue
            got = await anyio.to_thread.run_sync(
                copy_into_place, self.base_dir / rec.path, self.base_dir / rel
            )
            self._downloaded(fp, i, rel, got)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
