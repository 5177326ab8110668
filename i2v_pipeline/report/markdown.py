"""The Markdown summary for a pull-request comment: counts, credits, and the jobs by state with
what changed since the lock on the base branch (new, re-bought, relocated, removed)."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ..model import LockEntry, PlanItem
from .cards import JOB_STATUS, STATUSES, Report, human_duration

MAX_ROWS = 200
"""Rows in the jobs table: a comment has a size limit; changed jobs are listed first."""
CHANGES = ("new", "re-bought", "relocated", "removed")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
"""What can start emphasis, code, a link or a cell inside a table row."""


def md_text(text: str) -> str:
    """Text shown as itself in GitHub Markdown: HTML escaped, Markdown punctuation backslashed,
    on one line (a newline would end a table row)."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


@dataclass(frozen=True)
class Change:
    kind: str
    job_id: str
    fingerprint: str
    state: str
    credits: int | None


def lock_changes(base: Mapping[str, LockEntry], now: Mapping[str, LockEntry]) -> dict[str, Change]:
    """What changed per fingerprint between the base branch's lock and this one: new (a job the
    base never bought), re-bought (a job bought again: changed, or retried), relocated (same
    video, other path), removed (a job gone from the lock altogether)."""
    out: dict[str, Change] = {}
    base_ids = {e.job_id for e in base.values()}
    now_ids = {e.job_id for e in now.values()}
    for fp, e in now.items():
        old = base.get(fp)
        if old is None:
            kind = "re-bought" if e.job_id in base_ids else "new"
        elif old.attempt != e.attempt:
            kind = "re-bought"
        elif _paths(old) != _paths(e):
            kind = "relocated"
        else:
            continue
        out[fp] = Change(kind, e.job_id, fp, e.state, e.credits)
    for fp, old in base.items():
        if fp not in now and old.job_id not in now_ids:
            out[fp] = Change("removed", old.job_id, fp, "-", None)
    return out


def _paths(e: LockEntry) -> list[str | None]:
    return [f.path if f else None for f in e.files]


def render_markdown(report: Report, base: Mapping[str, LockEntry] | None = None) -> str:
    jobs = report.job_counts()
    lines = [f"### i2v report: {md_text(report.name)} ({md_text(report.manifest)})", ""]
    counts = " · ".join(f"{n} {s}" for s, n in jobs.items()) or "no jobs"
    lines.append(f"**{len(report.job_status)} jobs**: {counts}  ")
    # audio calls are paid apart from their video: rows of their own, so the rows add up
    own_rows = " (the audio stage's calls on rows of their own)" if report.audio else ""
    lines.append(
        f"**credits**: {report.credits_spent} spent, {report.credits_planned} planned{own_rows}"
        + (f" · **last run**: {human_duration(report.last_run.seconds)}" if report.last_run else "")
    )
    changes = lock_changes(base, _entries(report)) if base is not None else {}
    if base is not None:
        tally = Counter(c.kind for c in changes.values())
        lines += ["", "Since the base lock: " + ", ".join(f"{tally[k]} {k}" for k in CHANGES)]
    lines += ["", "| state | jobs |", "|---|---:|"]
    lines += [f"| {s} | {n} |" for s, n in jobs.items()]
    lines += ["", *_job_table(report, changes)]
    return "\n".join(lines) + "\n"


def _entries(report: Report) -> dict[str, LockEntry]:
    return {i.fingerprint: i.entry for i in report.jobs if i.entry is not None}


def _audio_row(item: PlanItem) -> str:
    """`garden.two ♪ audio v2`: an audio call's row, named by its job and variant."""
    if item.audio is not None:  # one variant: no number, as output paths have none
        variant = item.audio.variant if item.audio.video.variants > 1 else None
    else:
        variant = item.entry.variant if item.entry else None
    return f"{item.job_id} ♪ audio" + (f" v{variant}" if variant else "")


def _spent(e: LockEntry | None) -> int | None:
    return e.credits if e is not None and e.credits is not None else None


def _job_table(report: Report, changes: Mapping[str, Change]) -> list[str]:
    order = {s: n for n, s in enumerate(STATUSES)}
    rows = [
        (
            changes[i.fingerprint].kind if i.fingerprint in changes else "",
            report.job_status[i.fingerprint],
            i.job_id,
            _spent(i.entry),
            i.credits,
        )
        for i in report.jobs
    ]
    rows += [
        ("", JOB_STATUS[i.action], _audio_row(i), _spent(i.entry), i.credits) for i in report.audio
    ]
    rows += [("removed", "-", c.job_id, None, 0) for c in changes.values() if c.kind == "removed"]
    rows.sort(key=lambda r: (r[0] == "", order.get(r[1], len(order)), r[2]))
    head = ["| job | state | credits | change |", "|---|---|---:|---|"]
    body = [
        f"| {md_text(job)} | {state} | "
        f"{spent if spent is not None else (f'{planned} planned' if planned else '-')} | "
        f"{change or ''} |"
        for change, state, job, spent, planned in rows[:MAX_ROWS]
    ]
    if len(rows) > MAX_ROWS:
        body.append(f"| … {len(rows) - MAX_ROWS} more | | | |")
    return [f"<details><summary>Jobs ({len(rows)})</summary>", "", *head, *body, "", "</details>"]
