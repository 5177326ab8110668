"""Merging two lockfiles with their common ancestor: what `i2v lock merge` (git's merge driver
for `*.lock.yaml`) decides. Pure: text in, text and notes out.

Jobs are matched by fingerprint, three ways: a job only one side changed takes that side's line;
a job one side removed (prune, a replaced job) and the other left as it was is removed; a job
one side removed and the other changed is kept (it may hold a paid remote id). When both sides
changed a job:

- Same create (same attempt, or shared remote ids): the more advanced record wins:
  unknown < submitted < failed, succeeded; then more files held, more statuses finished.
- Different creates: the one holding remote ids wins over one without (a remote id is what was
  paid for; an `unknown` has none to keep), and among those succeeded > submitted > failed;
  without ids an `unknown` wins over a `failed` (it may be charged: it stays visible).
  When both hold remote ids, both were paid: the winner is the entry, the other attempt goes
  under its `also_paid` (shown by `plan` and `status`), and a note says so.

Ties go to ours. Fields this version does not know are kept from the chosen side's line. A
genuine conflict (MergeConflict) is a side that is not an i2v lock of this format version, or
two sides that disagree on the manifest or the endpoint the remote ids belong to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import I2VError, LockError
from ..model import TERMINAL_STATUSES, LockEntry, PaidAttempt
from .journal import request_text
from .lock import job_line, lock_text, paid_json
from .lockentry import entry_from_json, entry_problem
from .lockread import read_rows


class MergeConflict(I2VError):
    """Two lockfiles that cannot be merged line by line: git shows the conflict to a person."""

    exit_code = 1
    default_hint = (
        "resolve it by hand: keep one side (`git checkout --ours/--theirs FILE`), rerun "
        "`i2v run` on the merged manifest to record the rest, and keep every remote id that "
        "was paid for"
    )


@dataclass(frozen=True)
class Job:
    """One job line: its fields as written (unknown ones included), its request text, and the
    entry i2v reads from them."""

    head: dict[str, Any]
    request: str
    entry: LockEntry

    def line(self) -> str:
        return job_line(self.head, self.request)


@dataclass(frozen=True)
class Side:
    """One of the three lockfiles: its header (None for an empty file) and jobs by fingerprint."""

    header: dict[str, Any] | None
    jobs: dict[str, Job]


@dataclass
class Merged:
    text: str
    notes: list[str] = field(default_factory=list)
    """What a person should hear about: jobs paid twice, removals refused."""
    paid_twice: int = 0


def read_side(path: Path, side: str = "BASE") -> Side:
    """A lockfile as a merge side. An empty or missing BASE (git's ancestor when there is none,
    the add/add case) has no jobs; an empty or missing OURS or THEIRS is a MergeConflict, as is
    anything that is not an i2v lock: merging it as "no jobs" would drop every paid record."""
    size = path.stat().st_size if path.is_file() else None
    if side == "BASE" and not size:
        return Side(None, {})
    if not size:
        what = "missing" if size is None else "empty"
        # The default hint says how to resolve it by hand (git checkout --ours/--theirs FILE).
        raise MergeConflict(f"{side} ({path}) is {what}: not an i2v lock")
    try:
        header, rows = read_rows(path)
    except LockError as exc:
        raise MergeConflict(f"{path} is not a lockfile this i2v can read: {exc.message}") from None
    jobs: dict[str, Job] = {}
    for line, row, request in rows:
        head = dict(row)
        text = request if request is not None else request_text(head.pop("request", None) or {})
        try:
            entry = entry_from_json(head, text)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MergeConflict(f"{path}:{line}: bad job entry: {entry_problem(exc)}") from None
        if entry.fingerprint in jobs:
            raise MergeConflict(f"{path}:{line}: fingerprint {entry.fingerprint[:12]} twice")
        jobs[entry.fingerprint] = Job(head, text, entry)
    return Side(header, jobs)


def merge_files(base: Path, ours: Path, theirs: Path) -> Merged:
    return merge(read_side(base), read_side(ours, "OURS"), read_side(theirs, "THEIRS"))


def merge(base: Side, ours: Side, theirs: Side) -> Merged:
    """The merged lockfile text and its notes; MergeConflict if there is none."""
    header = _header(ours, theirs)
    out = Merged("")
    kept: list[Job] = []
    for fp in sorted(ours.jobs.keys() | theirs.jobs.keys()):
        job = _one(base.jobs.get(fp), ours.jobs.get(fp), theirs.jobs.get(fp), out)
        if job is not None:
            kept.append(job)
    kept.sort(key=lambda j: (j.entry.job_id, j.entry.fingerprint))
    out.text = lock_text(header, [j.line() for j in kept])
    return out


HEADER_KEYS = ("manifest", "endpoint")
"""Header fields both sides must agree on: remote ids only mean something on one endpoint."""


def _header(ours: Side, theirs: Side) -> dict[str, Any]:
    if ours.header is None or theirs.header is None:
        header = ours.header or theirs.header
        return header if header is not None else {"version": 1, "manifest": ""}
    for key in HEADER_KEYS:
        a, b = ours.header.get(key), theirs.header.get(key)
        if a != b:
            raise MergeConflict(f"the two lockfiles disagree on their {key}: {a!r} and {b!r}")
    return ours.header


def _same(a: Job, b: Job) -> bool:
    return a.head == b.head and a.request == b.request


def _one(base: Job | None, ours: Job | None, theirs: Job | None, out: Merged) -> Job | None:
    """One fingerprint, three ways."""
    if ours is not None and theirs is not None:
        if _same(ours, theirs) or (base is not None and _same(base, theirs)):
            return ours
        if base is not None and _same(base, ours):
            return theirs
        return _combine(ours, theirs, out)
    side = ours if ours is not None else theirs
    assert side is not None
    if base is None:
        return side  # added on one side
    if _same(base, side):
        return None  # removed on the other side (prune, a replaced job): removed
    out.notes.append(
        f"job {side.entry.job_id} ({side.entry.fingerprint[:12]}): removed on one side, "
        f"changed on the other; kept ({side.entry.state}): `i2v prune` removes it if it is "
        "an orphan"
    )
    return side


def _same_create(a: LockEntry, b: LockEntry) -> bool:
    return a.attempt == b.attempt or bool(set(a.remote_ids) & set(b.remote_ids))


_LIFECYCLE = {"unknown": 0, "submitted": 1, "failed": 2, "succeeded": 3}
_OUTCOME = {"failed": 0, "unknown": 1, "submitted": 2, "succeeded": 3}


def _held(e: LockEntry) -> int:
    return sum(f is not None and not f.mismatch for f in e.files)


def rank_same(e: LockEntry) -> tuple[int, int, int]:
    """One create seen twice: the later knowledge of it ranks higher."""
    finished = sum(s in TERMINAL_STATUSES for s in e.remote_status)
    return _LIFECYCLE[e.state], _held(e), finished


def rank_other(e: LockEntry) -> tuple[bool, int, int]:
    """Two creates of one job: the one to keep as the entry ranks higher."""
    return bool(e.remote_ids), _OUTCOME[e.state], _held(e)


def _combine(ours: Job, theirs: Job, out: Merged) -> Job:
    """Both sides changed this job: keep the more advanced record, and every paid remote id."""
    o, t = ours.entry, theirs.entry
    same = _same_create(o, t)
    rank = rank_same if same else rank_other
    win, lose = (theirs, ours) if rank(t) > rank(o) else (ours, theirs)
    paid = _paid(win.entry, [*o.also_paid, *t.also_paid, *_attempt(lose.entry, same)])
    if not same and lose.entry.remote_ids:
        out.paid_twice += 1
        out.notes.append(
            f"job {win.entry.job_id} ({win.entry.fingerprint[:12]}) was paid for on both sides: "
            f"kept {win.entry.state} {','.join(win.entry.remote_ids)} as the entry, "
            f"{lose.entry.state} {','.join(lose.entry.remote_ids)} under also_paid"
        )
    elif not same and lose.entry.state == "unknown":
        out.notes.append(
            f"job {win.entry.job_id}: the other side's create sent {lose.entry.intent_at} got no "
            "answer; it may exist (and be charged): check the AKOOL dashboard"
        )
    if paid == win.entry.also_paid:
        return win
    head = dict(win.head)
    head["also_paid"] = [paid_json(p) for p in paid]
    return Job(head, win.request, entry_from_json(head, win.request))


def _attempt(e: LockEntry, same: bool) -> list[PaidAttempt]:
    if same or not e.remote_ids:
        return []
    return [PaidAttempt(e.attempt, e.remote_ids, e.credits)]


def _paid(entry: LockEntry, candidates: Iterable[PaidAttempt]) -> tuple[PaidAttempt, ...]:
    """The entry's own also_paid first, then new attempts; none twice, none the entry's own."""
    seen = {frozenset(entry.remote_ids)}
    out: list[PaidAttempt] = []
    for p in (*entry.also_paid, *candidates):
        key = frozenset(p.remote_ids)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return tuple(out)
