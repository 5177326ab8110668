"""Videos between the output folder and the store (store.py): uploads in the background while a
run lands them, fetches in place of a download, and the whole-lock `push` and `pull`.

Every file that reaches or comes from the store gets a journal record (`stored`, or
`downloaded` with `stored: true`), so the lock says which videos a teammate can pull. A failed
upload never fails a run: the video is held locally and `i2v push` uploads it later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ..errors import StoreError, StoreIntegrityError, StoreMissingError
from ..model import Event, EventKind, FileRecord, JobSpec, PlanItem
from ..state.journal import Entries
from ..state.journal import record as journal_record
from ..state.lock import owned_file
from ..text import plural
from .download import holds
from .store import Store

Record = Callable[[dict[str, Any]], None]
Landed = tuple[str, int, str, str, int]
"""A verified file to store: (fingerprint, variant, path, sha256, bytes)."""


def landed_record(fp: str, i: int, rel: str, rec: FileRecord, mtime_ns: int) -> dict[str, Any]:
    """The `downloaded` record of a file fetched from the store: the recorded video, stored."""
    out = journal_record(
        "downloaded", fp, i=i, path=rel, sha256=rec.sha256, bytes=rec.bytes, mtime_ns=mtime_ns
    )
    if rec.mismatch:
        out["mismatch"] = rec.mismatch
    out["stored"] = True
    return out


async def fetch_recorded(
    store: Store, record: Record, fp: str, i: int, target: Path, rel: str, rec: FileRecord
) -> None:
    """Fetch rec's video to target (rel: its path as the lock writes it) and record it. On the
    recorded path the recorded mtime is given back, so the lock's line stays byte-identical
    (the bytes were just hashed against the record, which is what an unchanged mtime vouches
    for). A missing or damaged object drops the file's `stored` flag (an `unstored` record);
    the plan still tries the store again once the result URL has expired."""
    try:
        await store.aget(rec.sha256, target, rec.bytes)
    except (StoreMissingError, StoreIntegrityError):
        if rec.stored:
            record(journal_record("unstored", fp, i=i, sha256=rec.sha256))
        raise
    if rec.path == rel and rec.mtime_ns is not None:
        os.utime(target, ns=(rec.mtime_ns, rec.mtime_ns))
        mtime = rec.mtime_ns
    else:
        mtime = target.stat().st_mtime_ns
    record(landed_record(fp, i, rel, rec, mtime))


class StoreLink:
    """The store as one run uses it: `landed` queues an upload of a verified file, `restore`
    fetches a job's files from the store; built by the session, called by delivery."""

    def __init__(
        self,
        store: Store,
        *,
        base_dir: Path,
        entries: Entries,
        record: Record,
        emit: Callable[[Event], None],
        manifest: str = "MANIFEST",
    ) -> None:
        self.store, self.base_dir, self.entries = store, base_dir, entries
        self.manifest = manifest
        """The manifest's path, for the `i2v push` the notice suggests."""
        self.record, self.emit = record, emit
        self.stored = 0
        """Files the run flagged stored: uploaded, or their video found in the store."""
        self.uploaded = 0
        """Objects the run uploaded (at most one per video)."""
        self.failed = 0
        self._held: set[str] = set()
        """Videos (sha256) this run uploaded or found whole in the store: no second look."""
        self._refused: set[str] = set()
        self._damaged: set[str] = set()
        """Videos whose object this run refused by hash: uploaded again whatever its size."""
        """Videos whose upload failed in this run: not tried again (`i2v push` does it)."""
        self._busy: dict[str, anyio.Event] = {}
        """Videos being looked up or uploaded; set when that ends."""
        self._told = False
        self._send, self._queue = anyio.create_memory_object_stream[Landed](math.inf)

    def landed(self, fp: str, i: int, rel: str, sha256: str, size: int) -> None:
        """A verified file of `size` bytes is in place: upload it in the background (never
        waits), unless the store has it already (a copy of a stored video keeps the flag)."""
        files = self.entries[fp].files
        if i < len(files) and (f := files[i]) is not None and f.stored and f.sha256 == sha256:
            return
        self._send.send_nowait((fp, i, rel, sha256, size))

    async def serve(self) -> None:
        """Upload what lands until close(), then finish the uploads in flight."""
        async with anyio.create_task_group() as tg, self._queue:
            async for job in self._queue:
                tg.start_soon(self._upload, *job)
        if self.failed:
            self.emit(
                Event(
                    EventKind.NOTICE,
                    "",
                    f"{plural(self.failed, 'video')} not uploaded to the store "
                    f"{self.store.display}; `i2v push {self.manifest}` uploads them",
                )
            )

    def close(self) -> None:
        """No more files will land: serve() returns once the last upload ends."""
        self._send.close()

    async def _upload(self, fp: str, i: int, rel: str, sha256: str, size: int) -> None:
        """Flag the file stored once the store holds its video: one look-up per video and
        run, and an upload only if the store lacks it (or holds other bytes than `size`).
        Files of a video being looked up or uploaded wait for that instead of doing it
        again (copies of one video were once uploaded once per file)."""
        while (busy := self._busy.get(sha256)) is not None:
            await busy.wait()
        if sha256 not in self._held and sha256 not in self._refused:
            self._busy[sha256] = done = anyio.Event()
            try:
                await self._put_missing(fp, rel, sha256, size)
            finally:
                del self._busy[sha256]
                done.set()
        if sha256 not in self._held:
            self.failed += 1
            return
        self.record(journal_record("stored", fp, i=i, sha256=sha256))
        self.stored += 1

    async def _put_missing(self, fp: str, rel: str, sha256: str, size: int) -> None:
        """Upload rel unless the store already has its video whole (the key names the content,
        so an object of the right size is that video; a damaged one is uploaded again, as
        `push` does); the video goes to _held, or to _refused if the store failed."""
        try:
            damaged = sha256 in self._damaged
            if damaged or await self.store.call(self.store.size, sha256) != size:
                await self.store.aput(self.base_dir / rel, sha256)  # re-hashes the file first
                self.uploaded += 1
        except StoreError as exc:
            if not self._told:  # one reason is enough; the count comes at the end
                self._told = True
                e = self.entries.get(fp)
                self.emit(Event(EventKind.NOTICE, e.job_id if e else "", exc.message))
            if not isinstance(exc, StoreIntegrityError):  # that one is this file's fault
                self._refused.add(sha256)
            return
        self._held.add(sha256)

    async def restore(self, spec: JobSpec, rel_paths: Sequence[str]) -> None:
        """Every variant of spec not already in place, from the store; StoreError if one
        cannot be had (the caller falls back on the API)."""
        fp = spec.fingerprint
        for i, rel in enumerate(rel_paths):
            files = self.entries[fp].files
            rec = files[i] if i < len(files) else None
            if rec is None:
                raise StoreError(f"job {spec.id}: no video #{i + 1} recorded to fetch")
            target = self.base_dir / rel
            if rec.path == rel and await anyio.to_thread.run_sync(
                holds, target, rec.bytes, rec.sha256
            ):
                continue
            try:
                await fetch_recorded(self.store, self.record, fp, i, target, rel, rec)
            except StoreIntegrityError:  # other bytes under its key: the download replaces them
                self._damaged.add(rec.sha256)
                raise
            self._held.add(rec.sha256)  # hashed on the way: a copy landing later is stored


# ---------------------------------------------------------------------- push and pull


@dataclass
class Transfer:
    """What a push or pull did, path by path (relative to the manifest's folder)."""

    done: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    """{"path", "job", "error"} for each file that could not be moved."""
    exit_code: int = 0
    """1 if a file could not be moved; 2 if the store could not be reached."""

    def problem(self, path: str, job: str, message: str, exit_code: int = 1) -> None:
        self.problems.append({"path": path, "job": job, "error": message})
        self.exit_code = max(self.exit_code, exit_code)

    def failed(self, path: str, job: str, exc: StoreError) -> None:
        self.problem(path, job, exc.message, exc.exit_code)


async def push(
    store: Store, entries: Entries, base_dir: Path, output_dir: Path, record: Record
) -> Transfer:
    """Upload every recorded video the store lacks, from the output folder; flag each stored.
    Only regular files inside the output folder are read: a lock may come from a pull request."""
    out = Transfer()

    async def one(fp: str, job: str, i: int, rec: FileRecord) -> None:
        try:
            # the size, not just a name: a truncated, empty or directory object is re-uploaded
            if await store.call(store.size, rec.sha256) == rec.bytes:
                out.already.append(rec.path)
            else:
                local = owned_file(output_dir, base_dir, rec.path)
                if local is None:
                    out.problem(rec.path, job, "held neither locally nor in the store")
                    return
                await store.aput(local, rec.sha256)
                out.done.append(rec.path)
        except StoreError as exc:
            out.failed(rec.path, job, exc)
            return
        if not rec.stored:
            record(journal_record("stored", fp, i=i, sha256=rec.sha256))

    async with anyio.create_task_group() as tg:
        for e in sorted(entries.values(), key=lambda e: (e.job_id, e.fingerprint)):
            for i, rec in enumerate(e.files):
                if rec is not None:
                    tg.start_soon(one, e.fingerprint, e.job_id, i, rec)
    return out


async def pull(
    store: Store,
    items: Sequence[PlanItem],
    base_dir: Path,
    prefix: str,
    record: Record,
    *,
    force: bool = False,
) -> Transfer:
    """Fetch from the store every recorded video the plan finds missing or changed locally
    (downloads, store fetches, relocations), into the output path the manifest gives it. A file
    present with other content than the lock's is the user's: replaced only with force."""
    out = Transfer()
    async with anyio.create_task_group() as tg:
        for item in items:
            if item.spec is not None and item.entry is not None:
                tg.start_soon(_pull_job, store, item, base_dir, prefix, out, record, force)
    return out


async def _pull_job(
    store: Store,
    item: PlanItem,
    base_dir: Path,
    prefix: str,
    out: Transfer,
    record: Record,
    force: bool,
) -> None:
    assert item.spec is not None and item.entry is not None
    e = item.entry
    for i, path in enumerate(item.spec.output_paths()):
        rel = path if prefix == "." else f"{prefix}/{path}"
        rec = e.files[i] if i < len(e.files) else None
        if rec is None:
            out.problem(rel, item.job_id, "never downloaded: `i2v run` fetches it from the API")
            continue
        target = base_dir / rel
        if await anyio.to_thread.run_sync(holds, target, rec.bytes, rec.sha256):
            if rec.path == rel:
                out.already.append(rel)
                continue
        elif not force and (target.exists() or target.is_symlink()):
            out.problem(
                rel,
                item.job_id,
                f"{rel} differs from the video the lock records (edited locally?): not "
                "overwritten; `i2v pull --force` replaces it with the store's copy",
            )
            continue
        try:
            await fetch_recorded(store, record, e.fingerprint, i, target, rel, rec)
        except StoreError as exc:
            out.failed(rel, item.job_id, exc)
            continue
        out.done.append(rel)
