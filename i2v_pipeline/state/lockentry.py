"""A lock line's fields as a LockEntry: every field checked (kind, range, paths that stay in
the manifest's folder), since a lock is data that may come from a pull request."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from ..model import ErrorRecord, FileRecord, LockEntry, LockState, PaidAttempt
from .journal import credits_of, request_text

STATES: dict[str, LockState] = {
    "unknown": "unknown",
    "submitted": "submitted",
    "succeeded": "succeeded",
    "failed": "failed",
}


intern = sys.intern
"""Timestamps repeat across thousands of entries (a batch shares its second): one copy each."""


def entry_from_json(d: Mapping[str, Any], request_json: str | None = None) -> LockEntry:
    """An entry from its parsed line; request_json, if given, is the raw request text.

    Built positionally, in LockEntry's field order (~6 us a line otherwise: a 100,000-line
    lock spent 0.7 s here); tests/test_lock.py round-trips every field."""
    get = d.get
    ids = get("remote_ids", ())
    if ids.__class__ is not list and ids != ():
        raise ValueError("remote_ids must be a list")  # a string would read as its characters
    n = len(ids)
    files = get("files")
    err = get("error")
    state = STATES.get(d["state"])
    if state is None:
        raise ValueError(f"unknown state {d['state']!r}")
    fp = d["fingerprint"]
    if not isinstance(fp, str) or len(fp) != 64:
        raise ValueError("fingerprint must be 64 hex characters")
    if request_json is None:
        request_json = request_text(get("request") or {})
    if not files:
        files_: tuple[FileRecord | None, ...] = (None,) * n
    elif files.__class__ is list and len(files) == 1:  # the usual one: no list built
        files_ = (_file_record(files[0]) if files[0] else None,)
    else:
        files_ = tuple([_file_record(f) if f else None for f in files])
    video = get("video")
    # the checks in the order they always ran (a bad line names its first problem)
    job_id, attempt = str(d["id"]), str(d["attempt"])
    remote_ids = tuple(ids) if _all_str(ids) else tuple(map(str, ids))
    status = tuple(map(int, get("remote_status", ())))
    error = ErrorRecord(err.get("code"), str(err["message"])) if err else None
    paid = tuple([_paid_record(p) for p in paid]) if (paid := get("also_paid")) else ()
    stage = _stage(video, d) if video is not None else (None, None)
    return LockEntry(
        job_id,
        fp,
        state,
        attempt,
        request_json,
        remote_ids,
        status,
        credits_of(get("credits")),
        files_,
        intern(t) if (t := get("intent_at")) else t,
        intern(t) if (t := get("submitted_at")) else t,
        intern(t) if (t := get("finished_at")) else t,
        intern(t) if (t := get("expires_at")) else t,
        error,
        *stage,
        paid,
    )


def _all_str(values: Any) -> bool:
    """A list of strings (as written): kept as they are, without a str() each."""
    if values.__class__ is not list:
        return False
    if len(values) == 1:  # the usual one: no generator
        return values[0].__class__ is str
    return all(v.__class__ is str for v in values)


def _paid_record(d: Mapping[str, Any]) -> PaidAttempt:
    """Another paid create of the job, kept by a lock merge (state/merge.py)."""
    ids = d["remote_ids"]
    if not isinstance(ids, list) or not ids:
        raise ValueError("also_paid: remote_ids must be a non-empty list")
    return PaidAttempt(str(d["attempt"]), tuple(map(str, ids)), d.get("credits"))


def _stage(video: object, d: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """An audio record's link to its video (fingerprint, variant), checked: prune and the plan
    trust it."""
    if not isinstance(video, str) or len(video) != 64:
        raise ValueError("video must be a 64-hex fingerprint")
    variant = d.get("variant")
    if not isinstance(variant, int) or isinstance(variant, bool) or variant < 1:
        raise ValueError("an audio record's variant must be a whole number from 1")
    return video, variant


def _file_record(f: Mapping[str, Any]) -> FileRecord:
    record = FileRecord(**f)
    check_relative(record.path)
    sha = record.sha256
    # 64 lowercase hex digits: it names store keys (strip is 3x cheaper than a regex here)
    if sha.__class__ is not str or len(sha) != 64 or sha.strip(_HEX):
        raise ValueError("a file's sha256 must be 64 lowercase hex digits")
    return record


_HEX = "0123456789abcdef"


def check_relative(path: object) -> None:
    """A recorded file path stays under the manifest's folder: a lock (or journal) is data that
    may come from a pull request, and prune deletes, run copies, what it names."""
    if not isinstance(path, str) or not path:
        raise ValueError("a file path must be a non-empty string")
    if path.startswith(("/", "\\")) or path[1:2] == ":":  # `C:` is a Windows drive
        raise ValueError(f"file path {path!r} is absolute: paths are relative to the manifest")
    if ".." in path and ".." in re.split(r"[/\\]", path):  # the cheap test first: 100k lines
        raise ValueError(f"file path {path!r} leaves the manifest's folder (`..`)")


def entry_problem(exc: Exception) -> str:
    """What entry_from_json's error says of the line, in a reader's words."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} field" if exc.args else "a field is missing"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"a field holds the wrong kind of value ({exc})"
