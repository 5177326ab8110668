"""The lockfile: the durable record of what was bought, one line per job.

What a lock records of a request (lock_request), how an entry is spelled as a line, reading and
rendering the file, and compaction: at the end of a run (and on Ctrl-C) the entries, with the
journal (journal.py) folded in, are written to a temp file, renamed over the lock, and the
journal is removed.

Result URLs stay in the journal only: they expire within days, change host with the emulator's
port, and a signed CDN URL is a credential; a rerun re-queries them.

The lockfile is YAML whose jobs are one JSON flow mapping per line, sorted by id: any YAML tool
reads it, a pull request shows one changed line per changed job, an unchanged job's line is
byte-identical across runs, and i2v reads 100,000 entries in about a second (block-style YAML
took 35 s). Hand-edited block YAML is still accepted, through the slow path.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from ..canonical import canonical_json
from ..errors import LockError, ManifestError, utf8_damage
from ..model import ErrorRecord, FileRecord, JobSpec, LockEntry, LockState, PaidAttempt
from ..perf import gc_paused
from ..spec import validation as schemas
from ..spec.manifest import parse_yaml
from .files import open_own
from .journal import Entries, Warn, journal_path, replay, request_text

LOCK_VERSION = 1


# ---------------------------------------------------------------- entries <-> JSON


REQUEST_KEY = ', "request": '
"""`request` is the last key of a line. A JSON string cannot hold a bare `"`, so this text only
occurs as that key: lines split there without parsing the request, which stays JSON text."""


def lock_request(spec: JobSpec) -> dict[str, Any]:
    """What the lock records of a request: the fields plus the images' identities."""
    out = {**spec.request, "image": spec.image.identity()}
    if spec.last_frame:
        out["last_frame"] = spec.last_frame.identity()
    return out


def _head(e: LockEntry) -> dict[str, Any]:
    """Fixed key order, empty fields left out: the line only changes when the job does."""
    out: dict[str, Any] = {
        "id": e.job_id,
        "fingerprint": e.fingerprint,
        "state": e.state,
        "attempt": e.attempt,
    }
    optional: dict[str, Any] = {
        "remote_ids": list(e.remote_ids),
        "remote_status": list(e.remote_status),
        "credits": e.credits,
        "files": [_file_json(f) for f in e.files] if any(e.files) else [],
        "expires_at": e.expires_at,
        "intent_at": e.intent_at,
        "submitted_at": e.submitted_at,
        "finished_at": e.finished_at,
        "error": {"code": e.error.code, "message": e.error.message} if e.error else None,
        "also_paid": [paid_json(p) for p in e.also_paid],
    }
    out.update((k, v) for k, v in optional.items() if v not in (None, []))
    return out


def paid_json(p: PaidAttempt) -> dict[str, Any]:
    out: dict[str, Any] = {"attempt": p.attempt, "remote_ids": list(p.remote_ids)}
    if p.credits is not None:
        out["credits"] = p.credits
    return out


def _paid_record(d: Mapping[str, Any]) -> PaidAttempt:
    ids = d["remote_ids"]
    if not isinstance(ids, list) or not ids:
        raise ValueError("also_paid: remote_ids must be a non-empty list")
    return PaidAttempt(str(d["attempt"]), tuple(map(str, ids)), d.get("credits"))


def _file_json(f: FileRecord | None) -> dict[str, Any] | None:
    if f is None:
        return None
    out: dict[str, Any] = {"path": f.path, "sha256": f.sha256, "bytes": f.bytes}
    if f.mtime_ns is not None:
        out["mtime_ns"] = f.mtime_ns
    if f.mismatch:
        out["mismatch"] = f.mismatch
    return out


def entry_line(e: LockEntry) -> str:
    """One entry as its lockfile line (`- {...}`), request last and as recorded."""
    head = canonical_json(_head(e), sort_keys=False, spaced=True).decode()
    if e.request_json == "{}":
        return f"- {head}"
    return f"- {head[:-1]}{REQUEST_KEY}{e.request_json}}}"


STATES: dict[str, LockState] = {
    "unknown": "unknown",
    "submitted": "submitted",
    "succeeded": "succeeded",
    "failed": "failed",
}


def _shared(text: str | None) -> str | None:
    """Timestamps repeat across thousands of entries (a batch shares its second): keep one copy."""
    return sys.intern(text) if text else text


def entry_from_json(d: Mapping[str, Any], request_json: str | None = None) -> LockEntry:
    """An entry from its parsed line; request_json, if given, is the raw request text."""
    n = len(d.get("remote_ids", ()))
    files = d.get("files") or [None] * n
    err = d.get("error")
    state = STATES.get(d["state"])
    if state is None:
        raise ValueError(f"unknown state {d['state']!r}")
    fp = d["fingerprint"]
    if not isinstance(fp, str) or len(fp) != 64:
        raise ValueError("fingerprint must be 64 hex characters")
    if request_json is None:
        request_json = request_text(d.get("request") or {})
    files_ = tuple(_file_record(f) if f else None for f in files)
    return LockEntry(
        job_id=str(d["id"]),
        fingerprint=fp,
        state=state,
        attempt=str(d["attempt"]),
        request_json=request_json,
        remote_ids=tuple(map(str, d.get("remote_ids", ()))),
        remote_status=tuple(map(int, d.get("remote_status", ()))),
        # result URLs are not kept in the lock: they expire and may carry tokens
        video_urls=(None,) * n,
        credits=d.get("credits"),
        files=files_,
        intent_at=_shared(d.get("intent_at")),
        submitted_at=_shared(d.get("submitted_at")),
        finished_at=_shared(d.get("finished_at")),
        expires_at=_shared(d.get("expires_at")),
        error=ErrorRecord(err.get("code"), str(err["message"])) if err else None,
        also_paid=tuple(_paid_record(p) for p in d.get("also_paid") or ()),
    )


def _file_record(f: Mapping[str, Any]) -> FileRecord:
    record = FileRecord(**f)
    check_relative(record.path)
    return record


def check_relative(path: object) -> None:
    """A recorded file path stays under the manifest's folder: a lock (or journal) is data that
    may come from a pull request, and prune deletes, run copies, what it names."""
    if not isinstance(path, str) or not path:
        raise ValueError("a file path must be a non-empty string")
    if path.startswith(("/", "\\")) or path[1:2] == ":":  # `C:` is a Windows drive
        raise ValueError(f"file path {path!r} is absolute: paths are relative to the manifest")
    if ".." in path and ".." in re.split(r"[/\\]", path):  # the cheap test first: 100k lines
        raise ValueError(f"file path {path!r} leaves the manifest's folder (`..`)")


def owned_file(output_dir: Path, base_dir: Path, rel: str) -> Path | None:
    """base_dir/rel if it is a regular file (not a link) really inside output_dir, else None:
    what prune may delete and relocation may copy from."""
    try:
        check_relative(rel)
    except ValueError:
        return None
    path = base_dir / rel
    try:
        if path.is_symlink() or not path.is_file():
            return None
        real, root = path.resolve(strict=True), output_dir.resolve(strict=True)
    except OSError:
        return None
    return path if real.is_relative_to(root) and real != root else None


# ---------------------------------------------------------------- the lockfile


def _corrupt(path: Path, why: str, line: int | str | None = None) -> LockError:
    """line: a line number, or a ready `path:line:column`."""
    where = line if isinstance(line, str) else f"{path}:{line}" if line else str(path)
    return LockError(
        f"the lockfile is corrupt or not an i2v lock: {why}",
        where=where,
        hint=(
            f"inspect this file: {path}. If it is an i2v lock, restore it from version control "
            f"(e.g. `git checkout -- FILE`){' or fix the line named' if where != str(path) else ''}"
            "; do not delete it: it is the record of the videos bought. If it is not one, move "
            "it away"
        ),
    )


def _not_utf8(path: Path) -> LockError:
    offset, line, col = utf8_damage(path.read_bytes()) or (0, 1, 1)
    return _corrupt(path, f"not UTF-8 text (byte offset {offset})", f"{path}:{line}:{col}")


Rows = list[tuple[int, dict[str, Any], str | None]]
"""(line number, entry without its request, the request's JSON text or None)"""


class _TornLine(Exception):
    """A job line of our own layout that does not parse: cut short or damaged."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line, self.why = line, why


def _parse_fast(f: IO[str]) -> tuple[dict[str, Any], Rows] | None:
    """Our own layout, read line by line: YAML header, `jobs:`, one `- {json}` per line.
    None if the file is laid out otherwise (then the YAML parser reads it); _TornLine for a
    `- {` line that is not whole JSON (a lock cut short is never read as a shorter lock)."""
    head: list[str] = []
    for line in f:
        if line.startswith("jobs:"):
            jobs_line = line.rstrip()
            break
        head.append(line)
    else:
        return None
    try:
        header = yaml.load("".join(head), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:  # e.g. git's conflict markers: the slow path says where, cleanly
        return None
    if not isinstance(header, dict) or jobs_line not in ("jobs:", "jobs: []"):
        return None
    rows: Rows = []
    for n, line in enumerate(f, len(head) + 2):
        if not line.strip():
            continue
        if jobs_line == "jobs: []" or not line.startswith("- {"):
            return None
        rows.append((n, *_split_line(n, line)))
    return header, rows


def _split_line(n: int, line: str) -> tuple[dict[str, Any], str | None]:
    """(the entry without its request, the request's JSON text); _TornLine if either is not
    whole JSON. The request is parsed only to check it (~2 µs), and kept as text."""
    body = line[2:].rstrip()
    cut = body.find(REQUEST_KEY)
    try:
        if cut < 0:
            head, request = orjson.loads(body), None
        else:
            request = body[cut + len(REQUEST_KEY) : -1]
            head = orjson.loads(body[:cut] + "}")
            if not body.endswith("}") or not isinstance(orjson.loads(request), dict):
                raise _TornLine(n, "the line's request is not a JSON object")
    except orjson.JSONDecodeError as exc:
        raise _TornLine(n, f"the line is cut short or damaged ({exc})") from None
    if not isinstance(head, dict):
        raise _TornLine(n, "the line is not a JSON object")
    return head, request


def _byte_offset(path: Path, line: int) -> int:
    """Where line (1-based) starts in the file, in bytes: for the error message."""
    offset = 0
    with open(path, "rb") as f:
        for _ in range(line - 1):
            offset += len(f.readline())
    return offset


def read_lock(path: Path) -> Entries:
    """Load the lockfile (empty if there is none). Corrupt or foreign files are LockError."""
    with gc_paused():
        return _read_lock(path)


def read_rows(path: Path) -> tuple[dict[str, Any], Rows]:
    """The lockfile's header and its job rows, unconverted (a merge keeps fields it does not
    know); the header is checked. FileNotFoundError if there is none: the caller decides."""
    try:
        with open(path, encoding="utf-8") as f:
            try:
                parsed = _parse_fast(f)
            except _TornLine as torn:
                parsed = _parse_torn(path, torn)
        if parsed is None:
            parsed = _parse_slow(path, path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as exc:
        raise _corrupt(path, str(exc)) from None
    header, rows = parsed
    if header.get("version") != LOCK_VERSION:
        raise _corrupt(path, f"version {header.get('version')!r}, expected {LOCK_VERSION}")
    schemas.validate("lock", {**header, "jobs": []}, what=str(path), error_class=LockError)
    return header, rows


def _read_lock(path: Path) -> Entries:
    try:
        _, rows = read_rows(path)
    except FileNotFoundError:
        return {}
    entries: Entries = {}
    for line, row, request in rows:
        try:
            entry = entry_from_json(row, request)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _corrupt(path, f"bad job entry ({type(exc).__name__}: {exc})", line) from None
        if entry.fingerprint in entries:
            raise _corrupt(path, f"fingerprint {entry.fingerprint[:12]} appears twice", line)
        entries[entry.fingerprint] = entry
    return entries


def _parse_torn(path: Path, torn: _TornLine) -> tuple[dict[str, Any], Rows]:
    """A `- {` line that is not JSON may still be a hand-edited YAML flow mapping; a line cut
    short never is (its closing brace is gone): then the error names the line and byte."""
    try:
        return _parse_slow(path, path.read_text(encoding="utf-8"))
    except LockError:
        where = f"line {torn.line} (byte {_byte_offset(path, torn.line)})"
        raise _corrupt(path, f"{where}: {torn.why}", torn.line) from None


def _parse_slow(path: Path, text: str) -> tuple[dict[str, Any], Rows]:
    """Any YAML layout, through the manifest loader: safe, and bounded against alias bombs."""
    try:
        doc, marks = parse_yaml(text, str(path))
    except ManifestError as exc:  # its `where` is path:line:column
        why = f"not a readable YAML document ({exc.message})"
        if "\njobs:" in text and text.rsplit("\n", 1)[-1].startswith("- {"):  # our layout, cut
            why = f"the file ends mid-line, as a cut-off copy or write does ({exc.message})"
        raise _corrupt(path, why, exc.where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise _corrupt(path, "no `jobs:` list")
    header = {k: v for k, v in doc.items() if k != "jobs"}
    # each job's line, so an error in one names it as the fast path does
    return header, [(marks.get(("jobs", i), (0, 0))[0], j, None) for i, j in enumerate(doc["jobs"])]


def render_lock(entries: Iterable[LockEntry], *, manifest: str, command: str, endpoint: str) -> str:
    """The whole lockfile text: header, then one line per entry sorted by job id."""
    header = {
        "version": LOCK_VERSION,
        "manifest": manifest,
        "generated_by": command,
        "endpoint": endpoint,
    }
    rows = sorted(entries, key=lambda e: (e.job_id, e.fingerprint))
    return lock_text(header, [entry_line(e) for e in rows])


def lock_text(header: Mapping[str, Any], job_lines: list[str]) -> str:
    """The lockfile from its header and its job lines, already sorted."""
    lines = [
        "# i2v lockfile: the record of what was bought. Written by i2v; review it, do not edit it.",
        yaml.safe_dump(dict(header), sort_keys=False, allow_unicode=True, width=1000).rstrip("\n"),
        "jobs:" if job_lines else "jobs: []",
        *job_lines,
    ]
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file beside path, fsync, rename over path, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_own(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_state(lock_path: Path, warn: Warn | None = None) -> Entries:
    """The lock with any journal left by an interrupted run replayed on top; warn hears of
    damaged journal lines (skipped, never fatal: later records hold paid remote ids)."""
    entries = read_lock(lock_path)
    if warn is None:
        replay(journal_path(lock_path), entries)
    else:
        replay(journal_path(lock_path), entries, warn)
    return entries


def compact(
    lock_path: Path, entries: Entries, *, manifest: str, command: str, endpoint: str
) -> None:
    """Write entries as the new lockfile, then drop the journal they already contain."""
    atomic_write(
        lock_path,
        render_lock(entries.values(), manifest=manifest, command=command, endpoint=endpoint),
    )
    journal_path(lock_path).unlink(missing_ok=True)
