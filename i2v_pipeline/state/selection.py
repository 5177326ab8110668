"""Narrowing a plan to the jobs a command is about: --only, --select, --shard, --limit."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from ..errors import UsageError
from ..model import Action, JobSpec, PlanItem

ONLY_CHOICES = ("failed", "unknown", "missing")


def select(
    items: Iterable[PlanItem],
    *,
    only: str | None = None,
    patterns: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
    limit: int | None = None,
) -> list[PlanItem]:
    """Narrow a plan: --only, --select (id glob or tag:NAME), --shard K/N, --limit N (counting
    work items only). UsageError for a --select pattern that matches no item at all (a typo,
    or a glob the shell expanded): selecting nothing would pass, in CI too, as done."""
    out: list[PlanItem] = []
    work = 0
    for pattern in patterns:
        if pattern in ("", "tag:"):
            raise UsageError(f"--select {pattern!r} is empty", hint="give an id glob or tag:NAME")
    unmatched = dict.fromkeys(patterns)
    first: str | None = None
    tags: set[str] = set()
    for item in items:
        first = first or item.job_id
        if unmatched and (tagged := _tagged(item)):
            tags.update(tagged.tags)
        if patterns:
            hit = [p for p in patterns if _selected(item, p)]
            for p in hit:
                unmatched.pop(p, None)
            if not hit:
                continue
        if only == "failed" and not _failed_before(item):
            continue
        if only == "unknown" and not (item.entry is not None and item.entry.state == "unknown"):
            continue
        if only == "missing" and item.action not in (
            Action.CREATE,
            Action.AUDIO,
            Action.REPLACE,
            Action.DOWNLOAD,
            Action.STORE,
            Action.RELOCATE,
        ):
            continue
        # an audio item goes to its video's shard: the audio needs the video done first
        fp = item.audio.video.fingerprint if item.audio is not None else item.fingerprint
        if shard and int(fp[:12], 16) % shard[1] != shard[0] - 1:
            continue
        if limit is not None and item.action.is_work:
            if work >= limit:
                continue
            work += 1
        out.append(item)
    if unmatched:
        named = ", ".join(repr(p) for p in unmatched)
        like = f"ids look like {first!r}; " if first else ""
        have = f"the tags are {', '.join(sorted(tags))}; " if tags else "no job has a tag; "
        raise UsageError(
            f"--select {named} {'matches' if len(unmatched) == 1 else 'match'} no job of the plan",
            hint=f"{like}{have}`i2v expand MANIFEST` lists them (tag:NAME is a whole tag, not "
            "a glob); quote a glob, or the shell may expand it first",
        )
    return out


def _failed_before(item: PlanItem) -> bool:
    """For --only failed: failed jobs, and failed audio records (retried as `+♪ audio`)."""
    if item.action in (Action.FAILED, Action.RETRY):
        return True
    return item.audio is not None and item.entry is not None and item.entry.state == "failed"


def _tagged(item: PlanItem) -> JobSpec | None:
    """The job whose tags an item has: an audio item has its video's."""
    return item.audio.video if item.audio is not None else item.spec


def _selected(item: PlanItem, pattern: str) -> bool:
    if pattern.startswith("tag:"):
        spec = _tagged(item)
        return spec is not None and pattern[4:] in spec.tags
    return fnmatch.fnmatchcase(item.job_id, pattern)


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` from --shard, checked (1 <= K <= N)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r} is not K/N", hint="e.g. --shard 2/4") from None
    if n < 1:
        raise UsageError(f"--shard {text}: N (the number of shards) must be at least 1")
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and N", hint="e.g. --shard 2/4")
    return k, n
