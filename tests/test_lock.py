"""Lockfile and journal: round trips, determinism, torn writes, corrupt files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from i2v_pipeline.errors import LockError, RunLockedError
from i2v_pipeline.model import ErrorRecord, LockEntry
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
    assert again == entries
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


def compacted_lock(tmp_path: Path) -> Path:
    """A lock written by compact from the sample records (two jobs, one line each)."""
    lock = tmp_path / "m.lock.yaml"
    write_journal(journal_path(lock), records())
    compact(lock, load_state(lock), manifest="m.yaml", command="c", endpoint="emulator")
    return lock


@pytest.mark.parametrize("bad", ["../victim.txt", "/tmp/pr/victim2.txt", "out/../../x", "C:\\x"])
def test_lock_refuses_file_paths_outside_its_folder(tmp_path: Path, bad: str) -> None:
    """A lock naming an absolute path or a `..` path is corrupt, and its line is named."""
    lock = compacted_lock(tmp_path)
    lock.write_text(lock.read_text().replace('"out/b-v1.mp4"', json.dumps(bad)))
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.where == f"{lock}:8"  # b.job's line
    assert "file path" in info.value.message
    with pytest.raises(LockError):  # the schema (`i2v validate`, editors) says so too
        schemas.validate("lock", yaml.safe_load(lock.read_text()), error_class=LockError)


def test_lock_cut_anywhere_mid_line_is_corrupt(tmp_path: Path) -> None:
    """A lock cut short inside a job line is never read as a shorter lock: line and byte named."""
    lock = compacted_lock(tmp_path)
    text = lock.read_bytes()
    end = text.rindex(b"# end\n")
    last = text.rindex(b"\n", 0, end - 1) + 1  # the start of the last job line
    for size in range(last + 3, end - 1, 7):
        lock.write_bytes(text[:size])
        with pytest.raises(LockError) as info:
            read_lock(lock)
        rendered = info.value.render()
        assert f"line 8 (byte {last})" in rendered and info.value.where == f"{lock}:8", size
        assert "restore it from version control" in rendered and "do not delete" in rendered


def test_lock_cut_at_a_line_end_is_corrupt(tmp_path: Path) -> None:
    """A lock cut where a line ends (a partial copy) would read as a lock with fewer jobs, and
    a run would buy the missing ones again: it is refused, by both readers, at the cut."""
    lock = compacted_lock(tmp_path)
    whole = lock.read_text()
    lines = whole.splitlines(keepends=True)
    assert lines[0].startswith("# i2v lockfile:") and lines[-1] == "# end\n"
    for keep in range(2, len(lines)):
        lock.write_text("".join(lines[:keep]))
        with pytest.raises(LockError) as info:
            read_lock(lock)
        assert "cut short" in info.value.message, keep
        assert "bought again" in info.value.message
    block = yaml.safe_dump(yaml.safe_load(whole), sort_keys=False)  # hand-edited: block style
    lock.write_text(f"{lines[0]}{block[: len(block) // 2]}")
    with pytest.raises(LockError, match="cut short"):
        read_lock(lock)
    lock.write_text(f"{lines[0]}{block}# end\n")
    assert len(read_lock(lock)) == 2


def test_a_lock_from_before_the_end_line_still_reads(tmp_path: Path) -> None:
    """Locks written before `# end` (another first line) read as they always did."""
    lock = compacted_lock(tmp_path)
    lines = lock.read_text().splitlines(keepends=True)
    old = "# i2v lockfile: the record of what was bought. Written by i2v; review it, do not edit"
    old += " it.\n"
    lock.write_text("".join([old, *lines[1:-1]]))
    assert len(read_lock(lock)) == 2


def test_garbage_line_in_a_lock_is_named(tmp_path: Path) -> None:
    """A line of garbage among the job lines names where it is."""
    lock = compacted_lock(tmp_path)
    lines = lock.read_text().splitlines(keepends=True)
    lock.write_text("".join([*lines[:7], "- {garbage\n", *lines[7:]]))
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.where == f"{lock}:8"


def test_created_whose_intent_is_damaged_still_resumes(tmp_path: Path) -> None:
    """A `created` record alone (its intent damaged) yields the submitted entry, ids and all."""
    jp = tmp_path / "j"
    intent, created = records()[:2]
    created = {**created, "id": intent["id"], "request": intent["request"]}
    jp.write_text(json.dumps(intent)[:40] + "\x00garbage\n" + json.dumps(created) + "\n")
    warned: list[str] = []
    entries: dict[str, LockEntry] = {}
    replay(jp, entries, warned.append)
    e = entries[FP]
    assert e.state == "submitted" and e.remote_ids == ("r1", "r2") and e.job_id == "b.job"
    assert e.attempt == "a1" and e.request["count"] == 2
    assert len(warned) == 1 and "Error" not in warned[0]


def test_created_of_an_older_format_without_id_still_resumes(tmp_path: Path) -> None:
    """A `created` written before it carried the job id still keeps its paid remote ids."""
    jp = tmp_path / "j"
    jp.write_text("garbage\n" + json.dumps(records()[1]) + "\n")
    entries: dict[str, LockEntry] = {}
    replay(jp, entries, lambda m: None)
    assert entries[FP].state == "submitted" and entries[FP].remote_ids == ("r1", "r2")


def test_created_of_a_new_attempt_whose_intent_is_lost(tmp_path: Path) -> None:
    """A lock entry of attempt a1 and a `created` of a2 (its intent lost): a2's ids are kept."""
    lock = compacted_lock(tmp_path)
    again = {**records()[1], "attempt": "a9", "ids": ["r9"], "id": "b.job"}
    journal_path(lock).write_text("garbage\n" + json.dumps(again) + "\n")
    e = load_state(lock, lambda m: None)[FP]
    assert e.attempt == "a9" and e.remote_ids == ("r9",) and e.state == "submitted"


def test_damaged_created_leaves_an_unknown_and_words_the_warnings(tmp_path: Path) -> None:
    """Intent kept, `created` damaged: the job is unknown; later records skipped in words."""
    jp = tmp_path / "j"
    recs = records()[:5]
    lines = [json.dumps(r) for r in recs]
    lines[1] = lines[1][:30] + "\x07\x00" + lines[1][30:]
    jp.write_text("\n".join(lines) + "\n")
    warned: list[str] = []
    entries: dict[str, LockEntry] = {}
    replay(jp, entries, warned.append)
    assert entries[FP].state == "unknown" and entries[FP].remote_ids == ()
    assert len(warned) == 4
    for message in warned:
        assert "Error" not in message and "index" not in message, message
    assert "not a whole JSON record" in warned[0]
    assert "a `status` record of job ffffffffffff" in warned[1]
    assert "its `created` record is missing" in warned[1]


def test_bad_entry_in_block_yaml_names_its_line(tmp_path: Path) -> None:
    """A bad job in a lock rewritten as block YAML names its line, as the fast path does."""
    lock = compacted_lock(tmp_path)
    doc = yaml.safe_load(lock.read_text())
    doc["jobs"][1]["state"] = "bogus"
    lock.write_text(yaml.safe_dump(doc, sort_keys=False))
    line = lock.read_text().splitlines().index("- id: b.job") + 1
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.where == f"{lock}:{line}" and "fix the line named" in info.value.hint


def test_files_beside_the_lock_are_never_written_through_a_symlink(tmp_path: Path) -> None:
    """A committed symlink named like the journal or the run guard is refused (exit 2), and the
    file it points at, outside the repository, is left as it was."""
    victim = tmp_path / "outside.txt"
    victim.write_text("ORIGINAL")
    repo = tmp_path / "repo"
    repo.mkdir()
    lock = repo / "m.lock.yaml"
    journal_link = journal_path(lock)
    journal_link.symlink_to(victim)
    journal = Journal(journal_link)
    with pytest.raises(LockError, match="symbolic link") as info:
        journal.append({"t": "intent", "fp": "f" * 64}, durable=True)
    assert info.value.exit_code == 2
    journal.close()
    guard = repo / "m.lock.yaml.run"
    guard.symlink_to(victim)
    with pytest.raises(LockError, match="symbolic link"):
        RunLock(lock, "i2v run m.yaml").acquire()
    assert victim.read_text() == "ORIGINAL"


def test_a_torn_line_after_a_bad_entry_decides(tmp_path: Path) -> None:
    """Entries are built as lines are read, yet a lock cut short further on is still named as
    cut, not by the bad entry before it: the whole file is read before a problem is raised."""
    lock = compacted_lock(tmp_path)
    lines = lock.read_text().splitlines(keepends=True)
    bad = lines[6].replace('"state": "', '"state": "nonsense-')
    lock.write_text("".join([*lines[:6], bad, *lines[7:-1]]).rstrip("\n")[:-5])
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.where == f"{lock}:8" and "line 8 (byte" in info.value.render()
    lock.write_text("".join([*lines[:6], bad, *lines[7:]]))  # whole: now the entry is named
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.where == f"{lock}:7" and "unknown state" in info.value.render()


@pytest.mark.parametrize(
    "body",
    [
        '{"id": "a", "state": "succeeded", "request": {"prompt": "x"}}',  # the usual layout
        '{"id": "a", "error": {"code": 1, "request": {}}, "state": "failed"}',  # nested first
        '{"id": "a", "requ\\u0065st": 1, "request": {"prompt": "x"}}',  # an escaped twin
        '{"id": "a", "request": {"prompt": "x"}, "state": "succeeded"}',  # request not last
        '{"id": "a", "request": ["x"]}',  # request not an object
        '{"id": "a", "request": {"prompt": "x"} }',  # space before the closing brace
        '{"id": "a", "request": {"prompt": "x"',  # cut short
        '{"id": "a", "request": {"prompt": "x\x01"}}',  # damaged
        '{, "request": {"prompt": "x"}}',
        '{"request": 1, "id": "a", "request": {"prompt": "x"}}',  # a twin spelled otherwise
        '{"id": "a", "request": {"request": {"prompt": "x"}}}',  # a twin inside the request
        '{"id": "say \\"hi\\"", "request": {"prompt": "x"}}',  # a backslash, no \\u
        '{"id": "a\\\\u", "request": {"prompt": "x"}}',  # an escaped backslash before u
    ],
)
def test_lock_line_parsed_whole_reads_as_part_by_part(body: str) -> None:
    """The one-parse fast path of a lock line gives what the part-by-part reading gives, or
    leaves the line to it (which words the error of a damaged one)."""
    from i2v_pipeline.state import lockread

    cut = body.find(lockread.REQUEST_KEY)

    def outcome(fn: Any) -> Any:
        try:
            return fn()
        except lockread._TornLine as torn:
            return ("torn", torn.line, torn.why)

    fast = outcome(lambda: lockread._split_line(7, f"- {body}\n"))
    assert fast == outcome(lambda: lockread._split_exact(7, body, cut))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"remote_ids": ["r1", "r2"]', '"remote_ids": "r1r2"', "remote_ids must be a list"),
        ('"credits": 40', '"credits": "40"', "credits must be a whole number"),
        ('"credits": 40', '"credits": [40]', "credits must be a whole number"),
        ('"credits": 40', '"credits": 4.5', "credits must be a whole number"),
        ('"credits": 40', '"credits": true', "credits must be a whole number"),
        ('"credits": 40', '"credits": -1', "credits must be a whole number"),
    ],
)
def test_a_lock_value_of_the_wrong_kind_is_refused_on_its_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """A string where the ids' list goes (it would read as its characters) or credits that are
    not a whole number (the budget sums them) make the lock corrupt at that line."""
    lock = compacted_lock(tmp_path)
    lock.write_text(lock.read_text().replace(old, new))
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.where == f"{lock}:8" and message in info.value.message


@pytest.mark.parametrize(
    ("field", "value"), [("ids", "r1r2"), ("ids", [1, 2]), ("credits", "40"), ("credits", 1.5)]
)
def test_a_created_record_of_the_wrong_kind_is_skipped_as_damaged(
    tmp_path: Path, field: str, value: object
) -> None:
    """The journal's `created` with ids that are not a list of strings, or credits that are
    not a whole number, is a damaged record: skipped with a warning, its intent an unknown."""
    jp = tmp_path / "j"
    recs = records()[:2]
    recs[1] = {**recs[1], field: value}
    jp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    warned: list[str] = []
    entries: dict[str, LockEntry] = {}
    replay(jp, entries, warned.append)
    assert entries[FP].state == "unknown" and entries[FP].remote_ids == ()
    assert len(warned) == 1 and "damaged record skipped" in warned[0]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
"""Any text a job can hold (a lone surrogate is refused before it reaches a lock)."""


@settings(max_examples=300, deadline=None)
@given(prompt=_TEXT, message=_TEXT)
@example(prompt="a\u2028b\x85c\u2029", message="\ufffe\uffff\x7f\x9b[2J")
@example(prompt='\u202eexe.gpj "q" \\u2028', message="\u2066\u200f\x00\x1b")
def test_any_text_reads_back_the_same_through_both_readers(
    tmp_path_factory: pytest.TempPathFactory, prompt: str, message: str
) -> None:
    """Whatever a prompt or a server's message holds (line separators, C1 controls, bidi
    controls, quotes), the lock reads it back unchanged, line by line and through the YAML
    loader (a hand-edited lock's reader), and its lines hold no character YAML breaks or
    refuses, nor one that reorders what a reviewer sees."""
    entry = LockEntry(
        job_id="j",
        fingerprint=FP,
        state="failed",
        attempt="a1",
        request_json=json.dumps({"prompt": prompt}, ensure_ascii=False),
        error=ErrorRecord(1003, message),
    )
    text = render_lock([entry], manifest="m.yaml", command="i2v run", endpoint="e")
    assert not set(text) & set("\x7f\x85\x9b\u2028\u2029\u202e\u2066\ufffe\uffff")
    path = tmp_path_factory.mktemp("lock") / "m.lock.yaml"
    path.write_text(text, encoding="utf-8")
    (back,) = read_lock(path).values()
    assert back.request == {"prompt": prompt} and back.error == entry.error
    (job,) = yaml.safe_load(text)["jobs"]
    assert job["request"] == {"prompt": prompt} and job["error"]["message"] == message
