"""The emulator's account on disk: a snapshot plus an append-only journal, like a real service
that keeps its jobs across SIGTERM and SIGKILL.

    F            snapshot: {"credits", "next_id", "cursor", "jobs": [...]}, replaced by rename
    F.journal    one JSON object per line: {"op": "create", "jobs": [...]} | {"op": "delete", ...}
    F.tmp        a compaction in progress; a leftover one (killed mid-compaction) is removed
    F.lock       flock'd while an emulator owns F (two emulators on one file would lose jobs)

Each change is written to the journal (one `os.write`, no user-space buffer) before its answer
leaves, so a killed process loses nothing it answered; fsync runs in groups (`sync()`, every
`journal_sync` seconds from the app) so requests never wait for the disk. Credits and statuses
are not journaled: a create record carries the job's price and timing, and the clock derives the
rest on replay (refunds included). Replay is idempotent by job id, so a crash between writing
the snapshot and truncating the journal applies nothing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from .account import Job, State


class StateError(Exception):
    """The state file cannot be used: unreadable, or owned by another emulator."""


class StateBusy(StateError):
    """Another emulator process owns this state file."""


class Persistence:
    """The emulator account on disk: a snapshot plus a journal, so jobs survive a kill."""

    def __init__(self, state: State, path: Path) -> None:
        self.state, self.path = state, path
        self.journal_path = path.with_name(path.name + ".journal")
        self.tmp_path = path.with_name(path.name + ".tmp")
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self.records = 0
        """Records appended since the last compaction."""
        self._dirty = False

    # ------------------------------------------------------------------ start / stop
    def open(self) -> None:
        """Lock, clean leftovers, load snapshot + journal, compact, and start journaling."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            for leftover in self.path.parent.glob(f"*{glob.escape(self.path.name)}*.tmp"):
                leftover.unlink(missing_ok=True)  # a compaction killed before its rename
            self._load_snapshot()
            self._replay()
            self.compact()
        except BaseException:
            self._unlock()
            raise
        self.state.on_create = self.record_create
        self.state.on_delete = self.record_delete

    def close(self) -> None:
        """Clean shutdown: everything goes into the snapshot; the journal is emptied."""
        if self._fd is None:
            return
        self.compact()
        os.close(self._fd)
        self._fd = None
        self.state.on_create = self.state.on_delete = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateBusy(
                f"{self.path} is in use by another emulator; stop it or use another state file"
            ) from None
        self._lock_fd = fd

    # ------------------------------------------------------------------ journal
    def _append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            return
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        os.write(self._fd, line)  # in the page cache now: survives SIGKILL, fsync'd by sync()
        self.records += 1
        self._dirty = True

    def record_create(self, jobs: Iterable[Job]) -> None:
        """Journal newly created jobs (synced by the next group commit)."""
        self._append({"op": "create", "jobs": list(jobs)})  # orjson writes dataclasses as is

    def record_delete(self, ids: list[str]) -> None:
        """Journal deleted job ids."""
        self._append({"op": "delete", "ids": ids})

    def sync(self) -> None:
        """Group commit: one fsync for every record written since the last one."""
        fd = self._fd
        if fd is not None and self._dirty:
            self._dirty = False
            try:
                os.fsync(fd)
            except OSError:
                if self._fd is not None:
                    raise  # a real I/O error; EBADF after close() (a late thread) is not one

    # ------------------------------------------------------------------ snapshot
    def compact(self) -> None:
        """Snapshot to F.tmp, fsync, rename over F, then empty the journal."""
        doc = {
            "credits": self.state.account.credits,
            "next_id": self.state.next_id,
            "cursor": self.state.account.cursor,
            "jobs": list(self.state.jobs.values()),
        }
        with open(self.tmp_path, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        self.tmp_path.replace(self.path)
        _fsync_dir(self.path.parent)
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            self._fd = os.open(self.journal_path, flags, 0o644)
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.records, self._dirty = 0, False

    def _load_snapshot(self) -> None:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise StateError(f"emulator state {self.path} is unreadable: {exc}") from None
        state = self.state
        state.account.credits = float(doc.get("credits", state.account.credits))
        state.account.cursor = float(doc.get("cursor", state.account.cursor))
        state.next_id = int(doc.get("next_id", 1))
        for raw in doc.get("jobs", []):
            state.restore(Job(**raw), charge=False)

    def _replay(self) -> None:
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.splitlines():
            try:
                record = orjson.loads(line)
            except ValueError:
                break  # a torn last line: the write never finished, so never answered
            if record.get("op") == "create":
                for raw in record["jobs"]:
                    if raw["id"] not in self.state.jobs:  # idempotent after a half compaction
                        self.state.restore(Job(**raw), charge=True)
            elif record.get("op") == "delete":
                for i in record["ids"]:
                    if (job := self.state.jobs.get(i)) is not None:
                        job.deleted = True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
