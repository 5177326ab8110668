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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..canonical import canonical_json
from ..model import FileRecord, JobSpec, LockEntry, PaidAttempt
from .files import open_own
from .journal import Entries, Warn, journal_path, replay
from .lockentry import check_relative
from .lockread import END, LOCK_VERSION, REQUEST_KEY, TITLE
from .lockread import read_lock as read_lock  # re-exported: reading is in lockread.py

# ---------------------------------------------------------------- entries <-> JSON


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
        "video": e.video,
        "variant": e.variant,
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


def _file_json(f: FileRecord | None) -> dict[str, Any] | None:
    if f is None:
        return None
    out: dict[str, Any] = {"path": f.path, "sha256": f.sha256, "bytes": f.bytes}
    if f.mtime_ns is not None:
        out["mtime_ns"] = f.mtime_ns
    if f.mismatch:
        out["mismatch"] = f.mismatch
    if f.stored:
        out["stored"] = True
    return out


def entry_line(e: LockEntry) -> str:
    """One entry as its lockfile line (`- {...}`), request last and as recorded."""
    return job_line(_head(e), e.request_json)


_ESCAPED = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffe\uffff]"
)
"""What a lock line never holds raw, but as its JSON escape (`\\u2028`): characters YAML
reads as a line break (NEL, U+2028, U+2029) or refuses (DEL, C1 controls, U+FFFE, U+FFFF),
as the YAML loader that reads a hand-edited lock would, and bidirectional controls, which
would make a line read other than it is in a pull request's review. Each occurs only inside
a JSON string (none is JSON whitespace), where its escape means the same."""


def job_line(head: Mapping[str, Any], request: str) -> str:
    """A job's lockfile line from its fields (in their order) and its request's JSON text."""
    text = canonical_json(head, sort_keys=False, spaced=True).decode()
    line = f"- {text}" if request == "{}" else f"- {text[:-1]}{REQUEST_KEY}{request}}}"
    if line.isascii() and "\x7f" not in line:
        return line
    return _ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


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


def render_lock(entries: Iterable[LockEntry], *, manifest: str, command: str, endpoint: str) -> str:
    """The whole lockfile text: header, then one line per entry sorted by job id."""
    return "".join(lock_lines(entries, manifest=manifest, command=command, endpoint=endpoint))


def lock_lines(
    entries: Iterable[LockEntry], *, manifest: str, command: str, endpoint: str
) -> Iterator[str]:
    """render_lock's text line by line (each with its newline), made as it is written: a
    100,000-job lock is never held whole in memory, let alone as lines, text and bytes."""
    header = {
        "version": LOCK_VERSION,
        "manifest": manifest,
        "generated_by": command,
        "endpoint": endpoint,
    }
    rows = sorted(entries, key=lambda e: (e.job_id, e.fingerprint))
    yield from _lock_head(header, bool(rows))
    for e in rows:
        yield entry_line(e) + "\n"
    yield f"{END}\n"


def _lock_head(header: Mapping[str, Any], jobs: bool) -> list[str]:
    return [
        f"{TITLE}\n",
        yaml.safe_dump(dict(header), sort_keys=False, allow_unicode=True, width=1000).rstrip("\n")
        + "\n",
        "jobs:\n" if jobs else "jobs: []\n",
    ]


def lock_text(header: Mapping[str, Any], job_lines: list[str]) -> str:
    """The lockfile from its header and its job lines, already sorted."""
    lines = "".join(f"{line}\n" for line in job_lines)
    return "".join(_lock_head(header, bool(job_lines))) + lines + f"{END}\n"


def atomic_write(path: Path, text: str | Iterable[str]) -> None:
    """Write text (or its pieces, in order) to a temp file beside path, fsync, rename over
    path, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_own(tmp, "w", encoding="utf-8") as f:
        if isinstance(text, str):
            f.write(text)
        else:
            f.writelines(text)
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
        lock_lines(entries.values(), manifest=manifest, command=command, endpoint=endpoint),
    )
    journal_path(lock_path).unlink(missing_ok=True)
