"""`i2v lock merge`: the three-way merge rules of state/merge.py, and the command's exit codes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.errors import LockError
from i2v_pipeline.model import ErrorRecord, FileRecord, LockEntry, PaidAttempt
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.state.lock import read_lock, render_lock
from i2v_pipeline.state.merge import MergeConflict, merge_files
from i2v_pipeline.state.plan import plan_to_json
from tests.test_plan import entry as plan_entry
from tests.test_plan import plan, spec

S0, S1 = spec(0), spec(1)
FILE = FileRecord("out/job0.mp4", "a" * 64, 100)


def entry(s: object, state: str, **kw: object) -> LockEntry:
    """test_plan's entry, with a time the lock schema accepts."""
    return dataclasses.replace(plan_entry(s, state, **kw), intent_at="2026-01-01T00:00:00Z")  # type: ignore[arg-type]


def unknown(i: int = 0, attempt: str = "a") -> LockEntry:
    return dataclasses.replace(entry(spec(i), "unknown"), attempt=attempt)


def submitted(i: int = 0, attempt: str = "a", rid: str = "r", status: int = 1) -> LockEntry:
    e = entry(spec(i), "submitted", remote_ids=(rid,), remote_status=(status,), files=(None,))
    return dataclasses.replace(e, attempt=attempt)


def succeeded(i: int = 0, attempt: str = "a", rid: str = "r", held: bool = True) -> LockEntry:
    e = entry(
        spec(i),
        "succeeded",
        remote_ids=(rid,),
        remote_status=(3,),
        credits=20,
        files=(FILE if held else None,),
    )
    return dataclasses.replace(e, attempt=attempt)


def failed(i: int = 0, attempt: str = "a", rid: str | None = None) -> LockEntry:
    ids = (rid,) if rid else ()
    e = entry(spec(i), "failed", remote_ids=ids, error=ErrorRecord(1003, "bad"))
    return dataclasses.replace(e, attempt=attempt, remote_status=(4,) * len(ids))


def write(path: Path, entries: list[LockEntry], endpoint: str = "emulator") -> Path:
    path.write_text(render_lock(entries, manifest="m.yaml", command="i2v run", endpoint=endpoint))
    return path


def read_back(tmp_path: Path, e: LockEntry) -> LockEntry:
    """e as a lockfile reader sees it (no result URLs, files padded)."""
    return read_lock(write(tmp_path / "one", [e]))[e.fingerprint]


def merged(
    tmp_path: Path, base: list[LockEntry] | None, ours: list[LockEntry], theirs: list[LockEntry]
) -> tuple[dict[str, LockEntry], list[str], Path]:
    b = tmp_path / "base"
    if base is None:
        b.write_text("")  # git's %O when the file has no common ancestor
    else:
        write(b, base)
    out = merge_files(b, write(tmp_path / "ours", ours), write(tmp_path / "theirs", theirs))
    result = tmp_path / "merged.lock.yaml"
    result.write_text(out.text)
    return read_lock(result), out.notes, result


def test_identical_sides_merge_to_the_same_bytes(tmp_path: Path) -> None:
    """Merging a lock with itself changes no byte: unchanged jobs keep their lines."""
    ours = write(tmp_path / "ours", [succeeded(0), submitted(1)])
    out = merge_files(ours, ours, ours)
    assert out.text == ours.read_text() and out.notes == []


def test_disjoint_shards_are_unioned(tmp_path: Path) -> None:
    """Two shards' locks with no common ancestor: every job of both, no notes."""
    got, notes, _ = merged(tmp_path, None, [succeeded(0)], [succeeded(1, rid="r1")])
    assert sorted(e.job_id for e in got.values()) == ["job0", "job1"] and notes == []


@pytest.mark.parametrize("swap", [False, True], ids=["ours-ahead", "theirs-ahead"])
@pytest.mark.parametrize(
    ("behind", "ahead"),
    [
        (unknown(), submitted()),
        (submitted(status=1), submitted(status=3)),
        (submitted(), failed(rid="r")),
        (submitted(), succeeded(held=False)),
        (succeeded(held=False), succeeded()),
    ],
    ids=["unknown<submitted", "queued<finished", "submitted<failed", "submitted<done", "held"],
)
def test_same_create_keeps_the_more_advanced_record(
    tmp_path: Path, behind: LockEntry, ahead: LockEntry, swap: bool
) -> None:
    """One create seen by both sides: the later knowledge of it wins, whichever side has it."""
    ours, theirs = (behind, ahead) if not swap else (ahead, behind)
    got, notes, _ = merged(tmp_path, [unknown()], [ours], [theirs])
    assert got[S0.fingerprint] == read_back(tmp_path, ahead)
    assert notes == []


def test_two_paid_remote_ids_are_both_kept(tmp_path: Path) -> None:
    """Both sides bought the job: the advanced one is the entry, the other is under also_paid."""
    got, notes, path = merged(
        tmp_path, None, [submitted(attempt="x", rid="rx")], [succeeded(attempt="y", rid="ry")]
    )
    e = got[S0.fingerprint]
    assert (e.state, e.remote_ids) == ("succeeded", ("ry",))
    assert e.also_paid == (PaidAttempt("x", ("rx",), None),)
    assert len(notes) == 1 and "paid for on both sides" in notes[0]
    schemas.validate("lock", yaml.safe_load(path.read_text()), what="merged")
    (item,) = plan([S0], [e], {"out/job0.mp4": 100})
    assert "also paid for: rx" in item.reason


def test_also_paid_is_not_lost_on_a_later_merge(tmp_path: Path) -> None:
    """A remote id already under also_paid survives merging with a side that lacks it."""
    earlier = dataclasses.replace(succeeded(), also_paid=(PaidAttempt("z", ("rz",), 20),))
    got, _, _ = merged(tmp_path, [submitted()], [submitted(status=3)], [earlier])
    assert got[S0.fingerprint].also_paid == (PaidAttempt("z", ("rz",), 20),)


@pytest.mark.parametrize(
    ("ours", "theirs", "keep"),
    [
        (unknown(attempt="x"), failed(attempt="y"), "x"),
        (failed(attempt="x"), unknown(attempt="y"), "y"),
        (unknown(attempt="x"), submitted(attempt="y"), "y"),
        (failed(attempt="x", rid="rx"), submitted(attempt="y", rid="ry"), "y"),
    ],
    ids=["unknown>failed", "failed<unknown", "ids>unknown", "submitted>failed"],
)
def test_different_creates_keep_the_one_to_act_on(
    tmp_path: Path, ours: LockEntry, theirs: LockEntry, keep: str
) -> None:
    """Different attempts: remote ids first, then the outcome; an unknown beats a failure."""
    got, _, _ = merged(tmp_path, None, [ours], [theirs])
    assert got[S0.fingerprint].attempt == keep


def test_removed_on_one_side_is_pruned(tmp_path: Path) -> None:
    """A job the base had and one side removed (prune) while the other left it: removed."""
    got, notes, _ = merged(
        tmp_path, [succeeded(0), succeeded(1)], [succeeded(0)], [succeeded(0), succeeded(1)]
    )
    assert list(got) == [S0.fingerprint] and notes == []


def test_removed_on_one_side_changed_on_the_other_is_kept(tmp_path: Path) -> None:
    """Removed on one side, advanced on the other: kept (it may hold a paid id), with a note."""
    got, notes, _ = merged(tmp_path, [submitted(1)], [], [succeeded(1)])
    assert got[S1.fingerprint].state == "succeeded"
    assert len(notes) == 1 and "removed on one side" in notes[0]


def test_unknown_fields_are_kept_from_the_chosen_side(tmp_path: Path) -> None:
    """A field this version does not know stays on the line of the side that wins."""
    write(tmp_path / "base", [unknown()])
    ours = write(tmp_path / "ours", [submitted()])
    theirs = write(tmp_path / "theirs", [succeeded()])
    text = theirs.read_text().replace('"state": "succeeded"', '"state": "succeeded", "later": 7')
    theirs.write_text(text)
    out = merge_files(tmp_path / "base", ours, theirs)
    assert '"state": "succeeded", "later": 7' in out.text


@pytest.mark.parametrize(
    "damage",
    ["endpoint", "markers", "version"],
)
def test_genuine_conflicts_exit_1_and_leave_ours(tmp_path: Path, damage: str) -> None:
    """Another endpoint, conflict markers or another format version: exit 1, OURS untouched."""
    base = write(tmp_path / "base", [])
    ours = write(tmp_path / "ours", [succeeded(0)])
    theirs = write(tmp_path / "theirs", [succeeded(1)], endpoint="https://openapi.akool.com")
    if damage != "endpoint":
        write(theirs, [succeeded(1)])
        text = theirs.read_text()
        if damage == "markers":
            theirs.write_text(f"<<<<<<< HEAD\n{text}=======\n{text}>>>>>>> other\n")
        else:
            theirs.write_text(text.replace("version: 1", "version: 2"))
    before = ours.read_bytes()
    with pytest.raises(MergeConflict):
        merge_files(base, ours, theirs)
    res = CliRunner().invoke(cli, ["lock", "merge", str(base), str(ours), str(theirs)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert ours.read_bytes() == before


@pytest.mark.parametrize("kind", ["empty", "missing"])
@pytest.mark.parametrize("side", ["OURS", "THEIRS"])
def test_an_empty_or_missing_side_is_a_conflict_not_no_jobs(
    tmp_path: Path, side: str, kind: str
) -> None:
    """A 0-byte or missing OURS/THEIRS exits 1 naming the side, OURS untouched: no record lost."""
    paid = [succeeded(i, rid=f"r{i}") for i in range(3)]
    base = write(tmp_path / "base", paid)
    ours = write(tmp_path / "ours", paid[:2])  # pruned one job
    theirs = write(tmp_path / "theirs", paid)
    bad = ours if side == "OURS" else theirs
    bad.write_text("") if kind == "empty" else bad.unlink()
    before = ours.read_bytes() if ours.exists() else None
    with pytest.raises(MergeConflict, match=f"^{side} .* is {kind}: not an i2v lock"):
        merge_files(base, ours, theirs)
    res = CliRunner().invoke(cli, ["lock", "merge", str(base), str(ours), str(theirs)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert f"{side} ({bad}) is {kind}" in res.output and "--ours/--theirs" in res.output
    assert (ours.read_bytes() if ours.exists() else None) == before


@pytest.mark.parametrize("kind", ["empty", "missing"])
def test_an_empty_or_missing_base_has_no_jobs(tmp_path: Path, kind: str) -> None:
    """BASE alone may be 0 bytes or missing (git's add/add case): both sides' jobs are kept."""
    base = tmp_path / "base"
    if kind == "empty":
        base.write_text("")
    ours = write(tmp_path / "ours", [succeeded(0)])
    theirs = write(tmp_path / "theirs", [succeeded(1, rid="r1")])
    res = CliRunner().invoke(cli, ["lock", "merge", str(base), str(ours), str(theirs)])
    assert res.exit_code == 0, res.output
    assert sorted(e.job_id for e in read_lock(ours).values()) == ["job0", "job1"]


def test_a_side_that_pruned_every_job_keeps_only_what_the_other_advanced(
    tmp_path: Path,
) -> None:
    """A valid `jobs: []` side is a prune: unchanged jobs go, ones the other side advanced stay."""
    got, notes, _ = merged(tmp_path, [submitted(0), submitted(1)], [], [succeeded(0), submitted(1)])
    assert list(got) == [S0.fingerprint] and got[S0.fingerprint].state == "succeeded"
    assert len(notes) == 1 and "removed on one side" in notes[0]
    got, notes, _ = merged(tmp_path, [submitted(0), submitted(1)], [submitted(0), submitted(1)], [])
    assert got == {} and notes == []


def test_plan_json_lists_also_paid_remote_ids(tmp_path: Path) -> None:
    """`plan --json` gives a merged job's other paid remote ids as `also_paid`, only when any."""
    e = dataclasses.replace(succeeded(0), also_paid=(PaidAttempt("y", ("ry", "rz"), 20),))
    doc = plan_to_json(plan([S0, S1], [e], {"out/job0.mp4": 100}), "m.yaml")
    one, two = doc["jobs"]
    assert one["id"] == "job0" and one["also_paid"] == ["ry", "rz"]
    assert "also_paid" not in two


def test_merge_command_writes_ours_and_exits_0(tmp_path: Path) -> None:
    """The driver form `%O %A %B`: the result replaces OURS, exit 0, notes on stderr."""
    base = write(tmp_path / "base", [])
    ours = write(tmp_path / "ours", [succeeded(attempt="x", rid="rx")])
    theirs = write(tmp_path / "theirs", [succeeded(attempt="y", rid="ry")])
    res = CliRunner().invoke(cli, ["lock", "merge", str(base), str(ours), str(theirs)])
    assert res.exit_code == 0, res.output
    (e,) = read_lock(ours).values()
    assert e.remote_ids == ("rx",) and e.also_paid[0].remote_ids == ("ry",)


def test_a_lock_with_conflict_markers_is_a_lock_error(tmp_path: Path) -> None:
    """A lock left with git's conflict markers is a clean LockError, not a YAML traceback."""
    text = write(tmp_path / "x.lock.yaml", [succeeded(0)]).read_text()
    path = tmp_path / "x.lock.yaml"
    path.write_text(f"<<<<<<< HEAD\n{text}=======\n{text}>>>>>>> other\n")
    with pytest.raises(LockError):
        read_lock(path)


def test_status_shows_the_other_paid_remote_ids(write_manifest: object, workdir: Path) -> None:
    """`i2v status` names a merged job's also_paid remote ids, in text and in --json."""
    manifest = write_manifest()  # type: ignore[operator]
    e = dataclasses.replace(succeeded(), also_paid=(PaidAttempt("y", ("ry",), 20),))
    write(workdir / "m.lock.yaml", [e])
    text = CliRunner().invoke(cli, ["status", str(manifest)])
    assert "(also paid for: ry)" in text.stdout, text.output
    doc = CliRunner().invoke(cli, ["status", str(manifest), "--json"])
    assert json.loads(doc.stdout)[0]["also_paid"] == ["ry"]


def test_install_merge_driver_outside_git_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a git repository the installer says so and exits 2, with no traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    res = CliRunner().invoke(cli, ["lock", "install-merge-driver"])
    assert res.exit_code == 2 and "git repository" in res.output and "Traceback" not in res.output
    assert not (tmp_path / ".gitattributes").exists()


@pytest.mark.parametrize("command", ["", "   "])
def test_install_merge_driver_refuses_an_empty_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """`--command ""` would install a driver git cannot run: exit 2, nothing installed."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["lock", "install-merge-driver", "--command", command])
    assert res.exit_code == 2 and "--command is empty" in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / ".gitattributes").exists()
    config = (tmp_path / ".git" / "config").read_text()
    assert "i2v-lock" not in config
