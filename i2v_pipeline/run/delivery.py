"""From a finished job to verified files: download or, when only the output path changed, copy
the file already held. Each file lands with a `downloaded` journal record; nothing here talks to
the API except through `requery`.

A download that fails in a way another try may fix (5xx, dropped or truncated body, a stall, a
file that does not decode) is retried within the run with backoff, each time with a fresh URL;
an expired URL is re-queried once. A paid video is never thrown away over a soft check."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from ..errors import DownloadError, ExpiredResultError, TransientDownloadError
from ..model import JobSpec
from ..state.journal import Entries
from ..state.journal import record as journal_record
from ..state.lock import owned_file
from ..text import plural
from . import offload
from .download import Downloaded, Policy, copy_into_place, fetch, holds, sweep_parts
from .pacing import backoff
from .sharing import StoreLink

ATTEMPTS = 4
"""Downloads of one file per run, before the job is reported failed (a rerun tries again)."""

Requery = Callable[[str], Awaitable[str | None]]
"""A remote id -> a fresh result URL (or None)."""


class Delivery:
    """Lands a finished job's files under base_dir/prefix and records each one; built by the
    run session, which gives it the recorder's `record` and a `requery` through the provider."""

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
        policy: Policy,
        retry_base: float = 0.5,
        store: StoreLink | None = None,
    ) -> None:
        self.session, self.base_dir, self.prefix = session, base_dir, prefix
        self.entries, self.record, self.requery = entries, record, requery
        self.slots = anyio.Semaphore(concurrent)
        self.policy, self.retry_base = policy, retry_base
        self.store = store
        """The manifest's store, if any: verified files are uploaded, missing ones fetched."""
        self.seals = offload.Lane("download seal")
        """Where landed files are sealed: inline while that is quick, else in a thread."""
        self._swept: set[Path] = set()
        """Folders cleared this run of the part files killed runs left behind."""

    def rel_paths(self, spec: JobSpec) -> list[str]:
        """Output paths relative to the manifest's folder, as the lock records them."""
        return [f"{self.prefix}/{p}" if self.prefix != "." else p for p in spec.output_paths()]

    def _downloaded(self, fp: str, i: int, rel: str, got: Downloaded) -> None:
        extra = {"mtime_ns": got.mtime_ns, "mismatch": got.mismatch}
        rec = journal_record("downloaded", fp, i=i, path=rel, sha256=got.sha256, bytes=got.bytes)
        self.record({**rec, **{k: v for k, v in extra.items() if v is not None}})
        if self.store is not None:
            self.store.landed(fp, i, rel, got.sha256, got.bytes)

    async def download(self, spec: JobSpec, ids: Sequence[str], urls: Sequence[str | None]) -> None:
        """Every variant not already in place; DownloadError if one cannot be had."""
        fp = spec.fingerprint
        async with self.slots:
            for i, rel in enumerate(self.rel_paths(spec)):
                held = self.entries[fp].files
                rec = held[i] if i < len(held) else None
                target = self.base_dir / rel
                if (  # hashed, not sized: `run --verify` may send a same-size changed file here
                    rec
                    and rec.path == rel
                    and await anyio.to_thread.run_sync(holds, target, rec.bytes, rec.sha256)
                ):
                    continue
                if i >= min(len(ids), len(urls)):  # a create that answered fewer ids than asked
                    raise DownloadError(
                        f"the API returned {plural(len(ids), 'video id')} for "
                        f"{plural(spec.variants, 'variant')}"
                    )
                got = await self._fetch(spec, ids[i], urls[i], target)
                self._downloaded(fp, i, rel, got)

    async def _fetch(self, spec: JobSpec, rid: str, url: str | None, target: Path) -> Downloaded:
        seconds, resolution = spec.seconds, spec.resolution
        if target.parent not in self._swept:  # once per folder and run
            self._swept.add(target.parent)
            sweep_parts(target.parent)
        expired = False
        for attempt in range(ATTEMPTS):
            if url is None:
                raise DownloadError("the result has no video URL")
            try:
                return await fetch(
                    self.session,
                    url,
                    target,
                    seconds=seconds,
                    resolution=resolution,
                    policy=self.policy,
                    seals=self.seals,
                )
            except ExpiredResultError:
                if expired:
                    raise
                expired = True  # result URLs expire: ask once for a fresh one
            except TransientDownloadError as exc:
                if attempt + 1 >= ATTEMPTS:
                    raise DownloadError(f"{exc.message} (after {ATTEMPTS} attempts)") from None
                await anyio.sleep(backoff(attempt, base=self.retry_base))
            url = await self.requery(rid)
        raise DownloadError(f"no usable download in {ATTEMPTS} attempts (the URL expired)")

    async def from_store(self, spec: JobSpec) -> None:
        """Every variant not in place, from the store (StoreError if one cannot be had)."""
        assert self.store is not None, "a `store` plan item needs the manifest's store"
        async with self.slots:
            await self.store.restore(spec, self.rel_paths(spec))

    async def relocate(self, spec: JobSpec) -> None:
        """Copy (never move: the old path may be another job's) to the new output path. Only
        from a regular file really inside the output folder with the recorded content: the
        lock naming it may come from a pull request. OSError if it cannot be had so."""
        fp = spec.fingerprint
        for i, rel in enumerate(self.rel_paths(spec)):
            held = self.entries[fp].files
            rec = held[i] if i < len(held) else None
            if rec is None or rec.path == rel:
                continue
            source = owned_file(self.base_dir / self.prefix, self.base_dir, rec.path)
            if source is None:
                raise PermissionError(
                    f"the recorded file {rec.path!r} is not a regular file inside the output "
                    "folder; it is not copied"
                )
            target = self.base_dir / rel
            got = await anyio.to_thread.run_sync(copy_into_place, source, target)
            if got.sha256 != rec.sha256:
                target.unlink(missing_ok=True)
                raise OSError(f"{rec.path!r} no longer holds the recorded video; not copied")
            self._downloaded(fp, i, rel, dataclasses.replace(got, mismatch=rec.mismatch))
