"""The journal: what happens during a run, one JSON line per state change, before the lock.

Appended to `<lock>.journal` (O(1) per update). `intent` is fsynced before a create is sent and
`created` written right after the answer (fsynced with the next group commit: run/recorder.py),
so a killed process never loses a remote id; an intent without a created is an *unknown*.
`apply` folds a record into `Entries` (the in-memory lock state, defined here) for live updates
and replay alike; lock.py turns entries into the lockfile.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ..canonical import canonical_json
from ..errors import LockError
from ..model import (
    TERMINAL_STATUSES,
    ErrorRecord,
    FileRecord,
    JobStatus,
    LockEntry,
)
from .files import open_own

NEWLINE = b"\n"
Entries = dict[str, LockEntry]
"""fingerprint -> entry"""


def utc_iso(ts: float | None = None) -> str:
    """A timestamp as the journal and lock write it: UTC, to the second."""
    second = math.floor(time.time() if ts is None else ts)
    last = _spelled[0]
    if last[0] == second:  # a run writes many records a second: spell each second once
        return last[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    _spelled[0] = (second, text)
    return text


_spelled: list[tuple[int | None, str]] = [(None, "")]
"""The last second spelled (one tuple, swapped whole: safe from any thread)."""


def record(kind: str, fp: str, **fields: Any) -> dict[str, Any]:
    """A journal record: its kind, the job's fingerprint, the time, and what happened."""
    return {"t": kind, "fp": fp, "at": utc_iso(), **fields}


def credits_of(value: object) -> int | None:
    """A recorded charge: a whole number of credits, or None (not known yet); ValueError for
    anything else (a lock or journal is data from a pull request: the budget sums these)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"credits must be a whole number, not {value!r}"[:120])


def request_text(request: Mapping[str, Any]) -> str:
    """Sorted keys: the same request always gives the same text, whoever wrote the file."""
    return canonical_json(dict(request), spaced=True).decode()


def apply(entries: Entries, rec: Mapping[str, Any]) -> None:
    """Fold one journal record into entries. Records for unknown fingerprints are ignored."""
    kind, fp = rec["t"], rec["fp"]
    if kind == "intent":
        old = entries.get(fp)
        entries[fp] = LockEntry(
            job_id=rec["id"],
            fingerprint=fp,
            state="unknown",
            attempt=rec["attempt"],
            request_json=request_text(rec.get("request", {})),
            intent_at=rec["at"],
            **_stage(rec),
            also_paid=old.also_paid if old else (),  # a retry keeps what a merge recorded
        )
        return
    if kind == "forget":
        entries.pop(fp, None)
        return
    e = entries.get(fp)
    if kind == "created":
        if e is None or rec.get("attempt") != e.attempt:
            # its intent was lost (a damaged line): `created` is written after its own intent
            # and before any later one, so it is the newest attempt and holds paid remote ids
            e = _from_created(fp, rec, e)
        ids = rec["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RecordError("a created record's ids must be a list of strings")
        n = len(ids)
        entries[fp] = dataclasses.replace(
            e,
            state="submitted",
            remote_ids=tuple(ids),
            remote_status=(JobStatus.QUEUED.value,) * n,
            files=(None,) * n,
            credits=credits_of(rec.get("credits")),
            submitted_at=rec["at"],
            error=None,
        )
        return
    if e is None:
        return
    if kind in ("status", "downloaded", "stored", "unstored") and not 0 <= rec["i"] < len(
        e.remote_ids
    ):
        raise RecordError(
            f"job {e.job_id} has no remote video #{rec['i']} (its `created` record is missing)"
        )
    elif kind == "status":
        entries[fp] = _with_status(e, rec)
    elif kind == "downloaded":
        files = list(e.files) or [None] * len(e.remote_ids)
        old, sha = files[rec["i"]], rec["sha256"]
        # the store is keyed by content: the same bytes landing again are still stored
        stored = bool(rec.get("stored")) or (old is not None and old.stored and old.sha256 == sha)
        files[rec["i"]] = FileRecord(
            rec["path"], sha, rec["bytes"], rec.get("mtime_ns"), rec.get("mismatch"), stored
        )
        entries[fp] = dataclasses.replace(e, files=tuple(files))
    elif kind in ("stored", "unstored"):
        entries[fp] = _with_stored(e, rec, kind == "stored")
    elif kind == "failed":
        entries[fp] = dataclasses.replace(
            e,
            state="failed",
            finished_at=rec["at"],
            error=ErrorRecord(rec.get("code"), str(rec.get("message", ""))),
        )
    elif kind == "relabel":
        entries[fp] = dataclasses.replace(e, job_id=rec["id"])
    else:
        raise ValueError(f"unknown journal record {kind!r}")


class RecordError(ValueError):
    """A journal record that cannot apply to the state before it; the message says why."""


def _from_created(fp: str, rec: Mapping[str, Any], e: LockEntry | None) -> LockEntry:
    """The entry a lost intent would have made, from its `created` record (which carries the
    job id and request since 2026-11; older ones fall back on the entry or the fingerprint)."""
    fallback = e.request_json if e else "{}"
    request = request_text(rec["request"]) if "request" in rec else fallback
    return LockEntry(
        job_id=str(rec.get("id") or (e.job_id if e else fp[:12])),
        fingerprint=fp,
        state="unknown",
        attempt=str(rec["attempt"]),
        request_json=request,
        intent_at=rec["at"],
        **_stage(rec),
    )


def _with_stored(e: LockEntry, rec: Mapping[str, Any], stored: bool) -> LockEntry:
    """Flag file i as uploaded (or, `unstored`, as found missing or damaged in the store), if
    it still holds the content the record names (other bytes may have landed meanwhile)."""
    files = list(e.files)
    f = files[rec["i"]] if rec["i"] < len(files) else None
    if f is None or f.sha256 != rec["sha256"]:
        return e
    files[rec["i"]] = dataclasses.replace(f, stored=stored)
    return dataclasses.replace(e, files=tuple(files))


def _stage(rec: Mapping[str, Any]) -> dict[str, Any]:
    """An audio record's link to its video (intent and created carry it), else nothing."""
    if rec.get("video") is None:
        return {}
    return {"video": str(rec["video"]), "variant": int(rec["variant"])}


def _with_status(e: LockEntry, rec: Mapping[str, Any]) -> LockEntry:
    i = rec["i"]
    status = list(e.remote_status)
    status[i] = rec["status"]
    # a result URL is not kept: it expires, may carry a token, and a download re-queries it
    changes: dict[str, Any] = {"remote_status": tuple(status)}
    if rec.get("expires_at"):
        changes["expires_at"] = rec["expires_at"]
    if rec.get("credits") is not None:
        changes["credits"] = rec["credits"]
    if all(s in TERMINAL_STATUSES for s in status):
        ok = all(s == JobStatus.SUCCEEDED for s in status)
        changes["state"] = "succeeded" if ok else "failed"
        if e.state == "submitted":  # a re-query of a finished job does not move its time
            changes["finished_at"] = rec["at"]
        if not ok:
            bad = sum(s == JobStatus.FAILED for s in status)
            changes["error"] = ErrorRecord(
                None, f"{bad} of {len(status)} variants failed (status {JobStatus.FAILED.value})"
            )
    return dataclasses.replace(e, **changes)


def journal_path(lock_path: Path) -> Path:
    """`x.lock.yaml` -> `x.lock.yaml.journal`."""
    return lock_path.with_name(lock_path.name + ".journal")


Warn = Callable[[str], None]


def _warn(message: str) -> None:
    """replay's default: a damaged line is logged under `i2v.state` (the CLI passes its own)."""
    logging.getLogger("i2v.state").warning(message)


RECORD_START = b'{"t":'
"""How every line Journal.append writes begins: where a record glued to a torn one starts."""


def damaged_path(path: Path) -> Path:
    """Where replay keeps damaged journal bytes for a person to look at."""
    return path.with_name(path.name + ".damaged")


def replay(path: Path, entries: Entries, warn: Warn = _warn) -> int:
    """Apply every record of the journal at path; returns records applied.

    A torn last line (a crash mid-write) is skipped. A damaged line elsewhere (a torn line that
    an older version appended after) never stops the replay: a whole record glued after the torn
    part is still applied, the damaged bytes are copied to `<journal>.damaged` so nothing is
    lost when the journal is compacted, and warn says so. Every later record is kept."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    lines = data.split(NEWLINE)
    applied = 0
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            apply(entries, json.loads(raw))
        except _DAMAGE as exc:
            if n == len(lines):  # no newline after it: the write a crash interrupted
                break
            applied += _salvage(path, n, raw, exc, entries, warn)
            continue
        applied += 1
    return applied


_DAMAGE = (ValueError, KeyError, TypeError, IndexError)


def _salvage(path: Path, n: int, raw: bytes, exc: Exception, entries: Entries, warn: Warn) -> int:
    """Apply the whole record at the end of a damaged line, if there is one; keep the rest."""
    kept = _keep_damaged(path, n, raw)
    where = f"{path}:{n}"
    cut = raw.rfind(RECORD_START)
    if cut > 0:
        try:
            apply(entries, json.loads(raw[cut:]))
        except _DAMAGE:
            pass
        else:
            warn(f"{where}: a torn record was skipped, the record after it kept{kept}")
            return 1
    warn(f"{where}: damaged record skipped: {_what(raw)}{_why(exc)}{kept}")
    return 0


def _what(raw: bytes) -> str:
    """The record's kind and job, if the line is readable enough to say."""
    try:
        rec = json.loads(raw)
        return f"a `{rec['t']}` record of job {str(rec['fp'])[:12]}, "
    except (ValueError, KeyError, TypeError, IndexError):
        return ""


def _why(exc: Exception) -> str:
    """An exception from reading or applying a record, in words (no Python error names)."""
    if isinstance(exc, RecordError):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "the line is not a whole JSON record (torn or overwritten bytes)"
    if isinstance(exc, KeyError):
        return f"the record has no `{exc.args[0]}` field"
    if isinstance(exc, ValueError) and "unknown journal record" in str(exc):
        return str(exc)
    return "a field of the record has the wrong type or value"


def _keep_damaged(path: Path, n: int, raw: bytes) -> str:
    """Copy a damaged line beside the journal (once), since compaction removes the journal."""
    side = damaged_path(path)
    line = f"{path.name}:{n}: ".encode() + raw + NEWLINE
    try:
        if side.exists() and line in side.read_bytes():
            return f"; its text is in {side}"
        with open_own(side, "ab") as f:
            f.write(line)
    except (OSError, LockError):  # the copy is a courtesy: a link or a full disk skips it
        return ""
    return f"; its text is in {side}"


def repair_tail(path: Path) -> None:
    """Before appending: end a torn last line, so the next record starts on a line of its own.
    A complete record missing only its newline gets one; a partial one is cut off (replay
    skips it anyway, and nothing after it can depend on it)."""
    try:
        f = open_own(path, "r+b")
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == NEWLINE:
            return
        start = _last_line_start(f, size)
        f.seek(start)
        try:
            json.loads(f.read())
        except ValueError:
            f.truncate(start)
        else:
            f.write(NEWLINE)
        f.flush()
        os.fsync(f.fileno())


def _last_line_start(f: IO[bytes], size: int, chunk: int = 65536) -> int:
    end = size
    while end > 0:
        begin = max(0, end - chunk)
        f.seek(begin)
        at = f.read(end - begin).rfind(NEWLINE)
        if at >= 0:
            return begin + at + 1
        end = begin
    return 0


class Journal:
    """Append-only, one JSON object per line. durable=True fsyncs before returning.

    Every line is flushed to the OS as it is appended (a killed process loses none); `sync`
    makes all of them durable at once, which is how the run group-commits (run/recorder.py).
    Safe to call from the event loop and from worker threads at once (the run's fsyncs run in
    a thread so they never block the loop): one lock orders whole lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._syncing = threading.Lock()
        """Held across an fsync, so close() cannot close the descriptor under it."""
        self.written = 0
        """Lines appended so far (by this object); `sync` returns how many are durable."""

    def append(self, record: Mapping[str, Any], *, durable: bool = False) -> int:
        """Write one record as a line; durable=True returns only after it is fsynced.
        Returns the line's number (count of lines written by this object, 1-based)."""
        line = canonical_json(record, sort_keys=False) + NEWLINE
        with self._lock:
            if self._f is None:
                repair_tail(self.path)
                self._f = open_own(self.path, "ab")  # held open for the whole run
            self._f.write(line)
            self._f.flush()
            self.written += 1
            if durable:
                os.fsync(self._f.fileno())
            return self.written

    def sync(self) -> int:
        """fsync every line appended so far; returns how many lines are now durable."""
        with self._syncing:
            with self._lock:
                if self._f is None:
                    return self.written
                fd, upto = self._f.fileno(), self.written
            # outside the append lock: appends go on meanwhile (`upto` does not cover them)
            os.fsync(fd)
            return upto

    def close(self) -> None:
        """Close the file, fsynced first: `sync` after close reports every line durable."""
        with self._syncing, self._lock:
            if self._f is not None:
                os.fsync(self._f.fileno())
                self._f.close()
                self._f = None
