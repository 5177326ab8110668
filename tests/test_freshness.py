"""Whether a held file is still the one the lock records: size and mtime as a cheap yes, the
content hash when they differ or when --verify asks; and kept mismatches shown in the plan."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from i2v_pipeline.model import Action, FileRecord
from i2v_pipeline.state.plan import disk_check, make_plan, plan_to_json

from .test_plan import NOW, done, spec


def held(tmp_path: Path, data: bytes = b"video" * 20) -> FileRecord:
    path = tmp_path / "out" / "job0.mp4"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return FileRecord("out/job0.mp4", digest, len(data), path.stat().st_mtime_ns)


def mtime(rec: FileRecord) -> int:
    assert rec.mtime_ns is not None
    return rec.mtime_ns


def test_same_size_and_mtime_is_fresh_without_hashing(tmp_path: Path) -> None:
    """The fast path: size and mtime as recorded means fresh, the content is not read."""
    rec = dataclasses.replace(held(tmp_path), sha256="0" * 64)  # a hash would say "changed"
    assert disk_check(tmp_path)("out/job0.mp4", rec)
    assert not disk_check(tmp_path, rehash=True)("out/job0.mp4", rec)


def test_touched_file_is_hashed(tmp_path: Path) -> None:
    """A new mtime makes the hash decide: intact content stays fresh, changed content does not."""
    rec = held(tmp_path)
    path = tmp_path / "out" / "job0.mp4"
    later = mtime(rec) + 10**9
    os.utime(path, ns=(later, later))
    check = disk_check(tmp_path)
    assert check("out/job0.mp4", rec)
    path.write_bytes(b"VIDEO" * 20)  # same size, new content, new mtime
    assert not check("out/job0.mp4", rec)


def test_verify_catches_same_size_change_with_restored_mtime(tmp_path: Path) -> None:
    """Same size, mtime put back: the cheap check is fooled, --verify (rehash) is not."""
    rec = held(tmp_path)
    path = tmp_path / "out" / "job0.mp4"
    path.write_bytes(b"VIDEO" * 20)
    os.utime(path, ns=(mtime(rec), mtime(rec)))
    assert disk_check(tmp_path)("out/job0.mp4", rec)
    assert not disk_check(tmp_path, rehash=True)("out/job0.mp4", rec)
    s = spec()
    entry = dataclasses.replace(done(s), files=(rec,))
    items = make_plan(
        [s], {s.fingerprint: entry}, prefix="out", now=NOW, check=disk_check(tmp_path, rehash=True)
    )
    assert items[0].action is Action.DOWNLOAD


def test_missing_or_resized_file_is_not_fresh(tmp_path: Path) -> None:
    """No file, or another size: not fresh, without hashing."""
    rec = held(tmp_path)
    check = disk_check(tmp_path)
    assert not check("out/other.mp4", rec)
    (tmp_path / "out" / "job0.mp4").write_bytes(b"short")
    assert not check("out/job0.mp4", rec)


def test_files_in_a_missing_folder_are_missing(tmp_path: Path) -> None:
    """A folder found missing is not searched file by file, and the folders beside it still are."""
    rec = held(tmp_path)
    check = disk_check(tmp_path)
    for n in range(3):
        assert not check(f"gone/sub/job{n}.mp4", dataclasses.replace(rec, path="gone/sub/x"))
    assert check("out/job0.mp4", rec)
    assert not check("out/other.mp4", rec)


def test_kept_mismatch_is_shown_by_the_plan(tmp_path: Path) -> None:
    """A video kept despite a frame-size mismatch is fresh, and the plan says how it differs."""
    s = spec()
    rec = dataclasses.replace(held(tmp_path), mismatch="frame is 360x640, expected 720p")
    entry = dataclasses.replace(done(s), files=(rec,))
    items = make_plan(
        [s], {s.fingerprint: entry}, prefix="out", now=NOW, check=disk_check(tmp_path)
    )
    assert items[0].action is Action.FRESH
    assert "differs from the request: frame is 360x640" in items[0].reason
    (job,) = plan_to_json(items, "m.yaml")["jobs"]
    assert job["mismatch"] == ["frame is 360x640, expected 720p"]
