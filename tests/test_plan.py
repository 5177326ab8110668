"""The plan is a pure diff: each lock state maps to one action with a reason."""

from __future__ import annotations

import dataclasses

import pytest

from i2v_pipeline.errors import UsageError
from i2v_pipeline.model import Action, ErrorRecord, FileRecord, ImageRef, JobSpec, LockEntry
from i2v_pipeline.state.journal import request_text
from i2v_pipeline.state.lock import lock_request
from i2v_pipeline.state.plan import PlanOptions, make_plan
from i2v_pipeline.state.selection import parse_shard, select

IMG = ImageRef("path", "/a.png", "a.png", "1" * 64)
NOW = 1_800_000_000.0


def spec(i: int = 0, prompt: str = "p", tags: tuple[str, ...] = ()) -> JobSpec:
    s = JobSpec(
        id=f"job{i}",
        image=IMG,
        request={"prompt": prompt, "count": 1, "video_length": 5, "resolution": "720p"},
        output=f"job{i}.mp4",
        tags=tags,
    )
    return dataclasses.replace(s, fingerprint=f"{i:064x}" if prompt == "p" else "9" * 64)


def entry(s: JobSpec, state: str, **kw: object) -> LockEntry:
    return LockEntry(
        job_id=s.id,
        fingerprint=s.fingerprint,
        state=state,
        attempt="a",  # type: ignore[arg-type]
        request_json=request_text(lock_request(s)),
        intent_at="T0",
        **kw,
    )  # type: ignore[arg-type]


def done(s: JobSpec, path: str = "out/job0.mp4") -> LockEntry:
    return entry(
        s,
        "succeeded",
        remote_ids=("r",),
        remote_status=(3,),
        files=(FileRecord(path, "a" * 64, 100),),
        expires_at="2099-01-01T00:00:00Z",
    )


def plan(
    specs: list[JobSpec],
    entries: list[LockEntry],
    files: dict[str, int] | None = None,
    **opts: bool,
) -> list:
    files = files or {}
    return make_plan(
        specs,
        {e.fingerprint: e for e in entries},
        prefix="out",
        probe=files.get,
        now=NOW,
        options=PlanOptions(**opts),
    )


def test_new_job_is_created_with_estimate() -> None:
    """No lock entry: + create, with a credit estimate."""
    (item,) = plan([spec()], [])
    assert (item.action, item.reason, item.credits) == (Action.CREATE, "new job", 20)


def test_fresh_when_file_matches() -> None:
    """Done remotely and the file has its recorded size: = fresh."""
    s = spec()
    (item,) = plan([s], [done(s)], {"out/job0.mp4": 100})
    assert item.action is Action.FRESH


@pytest.mark.parametrize(
    ("files", "action"),
    [
        ({}, Action.DOWNLOAD),
        ({"out/job0.mp4": 5}, Action.DOWNLOAD),
        ({"out/old.mp4": 100}, Action.RELOCATE),
    ],
    ids=["missing", "wrong-size", "moved"],
)
def test_local_file_problems(files: dict[str, int], action: Action) -> None:
    """A missing or changed file is downloaded; a file at the old path is relocated."""
    s = spec()
    e = done(s, "out/old.mp4") if action is Action.RELOCATE else done(s)
    (item,) = plan([s], [e], files)
    assert item.action is action and item.credits == 0


def test_changed_job_is_one_replace_with_old_and_new_values() -> None:
    """Same id, other fingerprint: one -/+ replace naming each changed value; no orphan line."""
    old = spec()
    new = dataclasses.replace(
        spec(prompt="q"), request={**spec().request, "prompt": "q", "resolution": "1080p"}
    )
    (item,) = plan([new], [done(old)])
    assert item.action is Action.REPLACE and item.credits == 25  # 1080p costs more
    assert item.reason == "prompt: p → q; resolution: 720p → 1080p"
    assert [(c.field, c.old, c.new) for c in item.changes] == [
        ("prompt", "p", "q"),
        ("resolution", "720p", "1080p"),
    ]
    assert item.replaces == done(old) and item.entry is None


def test_replace_of_an_entry_without_its_request_names_the_old_fingerprint() -> None:
    """An old lock line without `request` gives no made-up diff, just the superseded entry."""
    old = dataclasses.replace(done(spec()), request_json="{}")
    (item,) = plan([spec(prompt="q")], [old])
    assert item.action is Action.REPLACE and item.changes == ()
    assert item.reason == f"request changed (was {'0' * 12})"


def test_long_prompt_change_shows_the_differing_words() -> None:
    """A long prompt is shown around its difference only, quoted, with … where it is cut."""
    base = "A slow cinematic {} across the garden at golden hour, soft light, 4k detail"
    old = spec(prompt=base.format("pan"))
    old = dataclasses.replace(old, fingerprint="1" * 64)
    new = spec(prompt=base.format("orbit"))
    (item,) = plan([new], [done(old)])
    assert (
        item.reason == 'prompt: "…slow cinematic pan across the garden…" → '
        '"…slow cinematic orbit across the garden…"'
    )


def test_replace_of_an_unanswered_create_warns_and_older_entries_stay_orphans() -> None:
    """Replacing an unknown entry says it may exist remotely; a second stale entry is an orphan."""
    old = spec()
    older = dataclasses.replace(done(old), fingerprint="2" * 64)
    new = spec(prompt="q")
    items = plan([new], [older, entry(old, "unknown")])
    assert [i.action for i in items] == [Action.REPLACE, Action.ORPHAN]
    assert items[0].reason == "prompt: p → q; the old job (unknown) may still exist remotely"
    assert items[1].fingerprint == "2" * 64 and "superseded" in items[1].reason


def test_unknown_is_not_resubmitted_by_default() -> None:
    """An intent without an answer is ? unknown, unless --resubmit-unknown."""
    s = spec()
    (item,) = plan([s], [entry(s, "unknown")])
    assert item.action is Action.UNKNOWN and "--resubmit-unknown" in item.reason
    (item,) = plan([s], [entry(s, "unknown")], resubmit_unknown=True)
    assert item.action is Action.CREATE and item.credits == 20


def test_failed_and_retry() -> None:
    """Failed jobs stay failed unless --retry-failed."""
    s = spec()
    e = entry(s, "failed", error=ErrorRecord(1003, "bad"))
    (item,) = plan([s], [e])
    assert item.action is Action.FAILED and "code 1003" in item.reason
    (item,) = plan([s], [e], retry_failed=True)
    assert item.action is Action.RETRY


def test_submitted_is_resumed() -> None:
    """A job submitted but unfinished is ~ resume: polled, never created again."""
    s = spec()
    (item,) = plan([s], [entry(s, "submitted", remote_ids=("r",), remote_status=(2,))])
    assert item.action is Action.RESUME


def test_expired_download_says_requery() -> None:
    """A download past the URL's expiry says it will re-query."""
    s = spec()
    e = dataclasses.replace(done(s), expires_at="2020-01-01T00:00:00Z")
    (item,) = plan([s], [e])
    assert "re-queried" in item.reason


def test_selection() -> None:
    """--select globs and tags, --limit counts work items only, --shard partitions."""
    specs = [spec(i, tags=("hero",) if i % 2 else ()) for i in range(10)]
    items = plan(specs, [])
    assert [i.job_id for i in select(items, patterns=["job1*"])] == ["job1"]
    assert len(select(items, patterns=["tag:hero"])) == 5
    assert len(select(items, limit=3)) == 3
    shards = [select(items, shard=(k, 3)) for k in (1, 2, 3)]
    assert sorted(i.job_id for s in shards for i in s) == sorted(i.job_id for i in items)
    assert len(select(items, only="failed")) == 0
    assert len(select(items, only="missing")) == 10


def test_a_select_pattern_that_matches_nothing_is_a_usage_error() -> None:
    """A typo in --select would otherwise select nothing and pass as done (CI too): every
    pattern must match a job of the plan, even where --only or --shard then drops it."""
    specs = [spec(i, tags=("hero",) if i % 2 else ()) for i in range(4)]
    items = plan(specs, [])
    for patterns in (["jbo*"], ["job1", "tag:villain"], ["tag:Hero"]):
        with pytest.raises(UsageError, match="matches no job") as caught:
            select(items, patterns=patterns)
        assert repr(patterns[-1]) in caught.value.message
        assert "ids look like 'job0'" in (caught.value.hint or "")
    with pytest.raises(UsageError, match="'nope', 'tag:x' match no job") as caught:
        select(items, patterns=["nope", "job1", "tag:x"])  # every pattern that matched nothing
    assert "the tags are hero" in (caught.value.hint or "")
    for empty in ("", "tag:"):
        with pytest.raises(UsageError, match="is empty"):
            select(items, patterns=[empty])
    assert select(items, patterns=["job1", "tag:hero"], only="failed") == []  # each matched
    assert [i.job_id for i in select(items, patterns=["job[02]"], shard=(1, 1))] == ["job0", "job2"]


@pytest.mark.parametrize("text", ["3", "0/2", "3/2", "a/b", "1/0"])
def test_bad_shard(text: str) -> None:
    """--shard needs K/N with 1 <= K <= N."""
    with pytest.raises(UsageError):
        parse_shard(text)
