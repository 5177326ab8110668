"""Lockfile and journal: round trips, determinism, torn writes, corrupt files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from i2v_pipeline.errors import LockError, RunLockedError
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.state.journal import Journal, damaged_path, journal_path, replay
from i2v_pipeline.state.lock import compact, load_state, read_lock, render_lock
from i2v_pipeline.state.runlock import RunLock

FP = "f" * 64
FP2 = "e" * 64


def records() -> list[dict[str, object]]:
    return [
        {
            "t": "intent",
            "fp": FP,
            "id": "b.job",
            "attempt": "a1",
            "at": "2026-01-01T00:00:00Z",
            "request": {"prompt": 'p\u00e9 "q"', "count": 2},
        },
        {
            "t": "created",
            "fp": FP,
            "attempt": "a1",
            "ids": ["r1", "r2"],
            "credits": 40,
            "at": "2026-01-01T00:00:01Z",
        },
        {
            "t": "status",
            "fp": FP,
            "i": 0,
            "status": 3,
            "url": "http://x/1.mp4",
            "expires_at": "2026-01-08T00:00:00Z",
            "at": "2026-01-01T00:01:00Z",
        },
        {
            "t": "status",
            "fp": FP,
            "i": 1,
            "status": 3,
            "url": "http://x/2.mp4",
            "at": "2026-01-01T00:01:00Z",
        },
        {
            "t": "downloaded",
            "fp": FP,
            "i": 0,
            "path": "out/b-v1.mp4",
            "sha256": "a" * 64,
            "bytes": 10,
        },
        {"t": "intent", "fp": FP2, "id": "a.job", "attempt": "a2", "at": "2026-01-01T00:00:02Z"},
    ]


def write_journal(path: Path, recs: list[dict[str, object]]) -> None:
    j = Journal(path)
    for r in recs:
        j.append(r, durable=True)
    j.close()


def test_journal_replay_builds_entries(tmp_path: Path) -> None:
    """Replaying intent/created/status/downloaded gives the expected entry states."""
    lock = tmp_path / "m.lock.yaml"
    write_journal(journal_path(lock), records())
    entries = load_state(lock)
    done, unknown = entries[FP], entries[FP2]
    assert done.state == "succeeded" and done.remote_ids == ("r1", "r2")
    assert done.files[0] is not None and done.files[0].bytes == 10 and done.files[1] is None
    assert done.credits == 40 and done.expires_at == "2026-01-08T00:00:00Z"
    assert unknown.state == "unknown" and unknown.remote_ids == ()


def test_compact_is_valid_yaml_sorted_and_deterministic(tmp_path: Path) -> None:
    """The lock is valid YAML matching the schema, sorted by id, byte-identical when rewritten."""
    lock = tmp_path / "m.lock.yaml"
    write_journal(journal_path(lock), records())
    entries = load_state(lock)
    compact(lock, entries, manifest="m.yaml", command="i2v run m.yaml", endpoint="emulator")
    assert not journal_path(lock).exists()
    text = lock.read_text()
    doc = yaml.safe_load(text)
    schemas.validate("lock", doc, error_class=LockError)
    assert [j["id"] for j in doc["jobs"]] == ["a.job", "b.job"]
    again = read_lock(lock)
    # result URLs live in the journal only (they expire and may carry tokens)
    assert again == {
        fp: dataclasses.replace(e, video_urls=(None,) * len(e.video_urls))
        for fp, e in entries.items()
    }
    assert "http://x/1.mp4" not in text
    assert (
        render_lock(
            again.values(), manifest="m.yaml", command="i2v run m.yaml", endpoint="emulator"
        )
        == text
    )


def test_slow_path_reads_block_yaml(tmp_path: Path) -> None:
    """A lock rewritten in block style by another YAML tool still loads."""
    lock = tmp_path / "m.lock.yaml"
    write_journal(journal_path(lock), records())
    entries = load_state(lock)
    compact(lock, entries, manifest="m.yaml", command="c", endpoint="emulator")
    before = read_lock(lock)
    lock.write_text(yaml.safe_dump(yaml.safe_load(lock.read_text())))
    assert read_lock(lock) == before


def test_torn_last_journal_line_is_skipped(tmp_path: Path) -> None:
    """A crash mid-write leaves a partial last line; everything before it survives."""
    lock = tmp_path / "m.lock.yaml"
    jp = journal_path(lock)
    write_journal(jp, records()[:2])
    with open(jp, "ab") as f:
        f.write(b'{"t": "status", "fp": "ff')
    entries: dict[str, object] = {}
    assert replay(jp, entries) == 2  # type: ignore[arg-type]


def test_torn_tail_is_cut_before_the_next_append(tmp_path: Path) -> None:
    """A run after a crash mid-write cuts the torn line, so its records replay cleanly."""
    jp = tmp_path / "j"
    write_journal(jp, records()[:2])
    with open(jp, "ab") as f:
        f.write(b'{"t": "status", "fp": "ff')
    write_journal(jp, records()[2:])
    warned: list[str] = []
    entries: dict[str, object] = {}
    assert replay(jp, entries, warned.append) == 6  # type: ignore[arg-type]
    assert warned == []
    assert jp.read_bytes().count(b"\n") == 6 and jp.read_bytes().endswith(b"\n")


def test_whole_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    """A last record complete but for its newline is ended, not cut."""
    jp = tmp_path / "j"
    jp.write_bytes(json.dumps(records()[0]).encode())
    write_journal(jp, records()[1:2])
    got: dict[str, object] = {}
    assert replay(jp, got, lambda m: None) == 2  # type: ignore[arg-type]
    assert got[FP].state == "submitted"  # type: ignore[attr-defined]


def test_damaged_middle_record_is_skipped_and_later_records_kept(tmp_path: Path) -> None:
    """Damage before the last line warns, keeps its text aside, and keeps every later record."""
    lock = tmp_path / "m.lock.yaml"
    jp = journal_path(lock)
    lines = [json.dumps(r) for r in records()]
    lines.insert(1, '{"t": "status", "fp": "ff')  # torn by a crash, then a run appended
    jp.write_text("\n".join(lines) + "\n")
    warned: list[str] = []
    entries = load_state(lock, warned.append)
    assert entries[FP].remote_ids == ("r1", "r2") and entries[FP].state == "succeeded"
    assert entries[FP2].state == "unknown"
    (message,) = warned
    assert f"{jp}:2: damaged record skipped" in message
    assert b'{"t": "status", "fp": "ff' in damaged_path(jp).read_bytes()
    load_state(lock, warned.append)
    assert damaged_path(jp).read_bytes().count(b"\n") == 1  # kept once, however often read


def test_record_glued_to_a_torn_one_is_applied(tmp_path: Path) -> None:
    """A `created` appended right after a torn write (no newline between) is still applied."""
    jp = tmp_path / "j"
    intent, created = (json.dumps(r, separators=(",", ":")) for r in records()[:2])
    jp.write_text(intent + '\n{"t":"status","fp":"f' + created + "\n")
    warned: list[str] = []
    entries: dict[str, object] = {}
    assert replay(jp, entries, warned.append) == 2  # type: ignore[arg-type]
    assert entries[FP].remote_ids == ("r1", "r2")  # type: ignore[attr-defined]
    assert "the record after it kept" in warned[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{{", "not a readable YAML"),
        (
            "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
            "expands to more than",
        ),
        ('version: 1\nmanifest: m\njobs:\n- {"id": 1}\n', "bad job entry"),
        ("version: 9\nmanifest: m\njobs: []\n", "version 9"),
        ("hello: world\n", "no `jobs:`"),
        ("- a\n- b\n", "no `jobs:`"),
    ],
    ids=["garbage", "alias-bomb", "bad-entry", "foreign-version", "foreign-doc", "list"],
)
def test_corrupt_lock_says_inspect_never_delete(tmp_path: Path, text: str, message: str) -> None:
    """A corrupt or foreign lock is a LockError naming the file to inspect, never to delete."""
    lock = tmp_path / "m.lock.yaml"
    lock.write_text(text)
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert message in info.value.render()
    assert f"inspect this file: {lock}" in info.value.render()
    assert "do not delete it" in info.value.render()


def test_run_lock_refuses_second_holder(tmp_path: Path) -> None:
    """A second run on the same manifest is refused, naming the holder and the file."""
    lock = tmp_path / "m.lock.yaml"
    with RunLock(lock, "i2v run m.yaml"):
        with pytest.raises(RunLockedError) as info:
            RunLock(lock, "i2v run again").acquire()
        assert "i2v run m.yaml" in info.value.render()
        assert "m.lock.yaml.run" in info.value.render()
    with RunLock(lock, "third"):  # released: free again
        pass
