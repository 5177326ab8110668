"""The shared video store on file://: keys, atomic uploads, checked fetches; the lock's `stored`
flag through journal, lockfile and schema; the plan's `⇣ store` action; the manifest's `store:`."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from fsspec.implementations.local import LocalFileSystem

from i2v_pipeline.errors import (
    ConfigError,
    LockError,
    ManifestError,
    StoreError,
    StoreIntegrityError,
    StoreMissingError,
    mask_userinfo,
)
from i2v_pipeline.model import Action, FileRecord
from i2v_pipeline.run.store import Store, store_key
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.spec.settings import StoreSettings
from i2v_pipeline.state.journal import apply, record
from i2v_pipeline.state.lock import entry_line, render_lock
from i2v_pipeline.state.lockentry import entry_from_json
from i2v_pipeline.state.plan import PlanOptions, make_plan

from .test_plan import NOW, done, spec

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "out" / "a.mp4"
    path.parent.mkdir()
    path.write_bytes(VIDEO)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store((tmp_path / "store").as_uri())


def test_key_is_sha256_fanned_out_by_two_hex_digits() -> None:
    """`<prefix>/sha256/ab/cdef….mp4`, whatever the prefix's trailing slash."""
    h = "ab" + "c" * 62
    assert store_key("bucket/team/", h) == f"bucket/team/sha256/ab/{'c' * 62}.mp4"
    assert Store("s3://bucket/team/", fs=LocalFileSystem()).where(h) == (
        f"s3://bucket/team/sha256/ab/{'c' * 62}.mp4"
    )


def test_put_then_get_round_trips_and_checks(store: Store, video: Path, tmp_path: Path) -> None:
    """An uploaded video lands under its key and comes back whole to a new path."""
    h = sha(VIDEO)
    assert not store.exists(h)
    store.put(video, h)
    assert store.exists(h)
    assert (tmp_path / "store" / "sha256" / h[:2] / f"{h[2:]}.mp4").read_bytes() == VIDEO
    target = tmp_path / "elsewhere" / "b.mp4"
    assert store.get(h, target, len(VIDEO)) == len(VIDEO)
    assert target.read_bytes() == VIDEO
    assert [p.name for p in target.parent.iterdir()] == ["b.mp4"]  # no temp file left


def test_get_refuses_an_object_that_hashes_wrong(store: Store, video: Path, tmp_path: Path) -> None:
    """A damaged or replaced object is refused: nothing is written, the error names it."""
    h = sha(VIDEO)
    store.put(video, h)
    (tmp_path / "store" / "sha256" / h[:2] / f"{h[2:]}.mp4").write_bytes(b"x" * len(VIDEO))
    target = tmp_path / "out" / "b.mp4"
    with pytest.raises(StoreIntegrityError) as err:
        store.get(h, target, len(VIDEO))
    assert store.where(h) in err.value.message and "refused" in err.value.message
    assert not target.exists() and sorted(p.name for p in target.parent.iterdir()) == ["a.mp4"]


def test_get_of_a_missing_object_names_it(store: Store, tmp_path: Path) -> None:
    """A missing object is a clear error naming its URL and how to upload it."""
    h = "0" * 64
    with pytest.raises(StoreMissingError) as err:
        store.get(h, tmp_path / "x.mp4", 100)
    assert err.value.message == f"the store has no object {store.where(h)}"
    assert "i2v push" in err.value.hint and err.value.exit_code == 1
    assert not (tmp_path / "x.mp4").exists()


class SizelessFileSystem(LocalFileSystem):  # type: ignore[misc]
    """A filesystem that does not tell sizes: only the read limit stands between a fetch and
    an endless object."""

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return {"name": path, "type": "file"}


@pytest.mark.parametrize("fs", [None, SizelessFileSystem()], ids=["size-first", "read-limit"])
def test_get_reads_no_more_than_the_recorded_size(tmp_path: Path, fs: Any) -> None:
    """A key turned into a link to /dev/zero is refused after at most the recorded bytes (+1),
    and no temp file is left behind."""
    root = tmp_path / "store"
    store = Store(root.as_uri(), fs=fs) if fs else Store(root.as_uri())
    if fs:
        store.root = str(root)
    h = sha(VIDEO)
    key = root / "sha256" / h[:2] / f"{h[2:]}.mp4"
    key.parent.mkdir(parents=True)
    key.symlink_to("/dev/zero")
    target = tmp_path / "out" / "a.mp4"
    with pytest.raises(StoreIntegrityError) as err:
        store.get(h, target, len(VIDEO))
    assert f"the lock records {len(VIDEO):,} bytes: refused" in err.value.message
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_get_refuses_a_longer_object_before_copying_it(store: Store, tmp_path: Path) -> None:
    """An object longer than the lock's `bytes` is refused on its size alone: nothing copied."""
    h = sha(VIDEO)
    key = tmp_path / "store" / "sha256" / h[:2] / f"{h[2:]}.mp4"
    key.parent.mkdir(parents=True)
    key.write_bytes(VIDEO * 3)
    with pytest.raises(StoreIntegrityError, match=f"holds {3 * len(VIDEO):,} bytes"):
        store.get(h, tmp_path / "x.mp4", len(VIDEO))
    assert list(tmp_path.glob(".x.mp4*")) == []


def test_a_stopped_fetch_removes_its_temp_file(store: Store, video: Path, tmp_path: Path) -> None:
    """A cancelled caller's stop flag ends the copy, and the temp file goes with it."""
    import threading

    h = sha(VIDEO)
    store.put(video, h)
    stop = threading.Event()
    stop.set()
    with pytest.raises(StoreError, match="cancelled"):
        store.get(h, tmp_path / "x.mp4", len(VIDEO), stop)
    assert list(tmp_path.glob(".x.mp4*")) == [] and not (tmp_path / "x.mp4").exists()


def test_a_malformed_sha256_builds_no_key(store: Store) -> None:
    """A lock's sha256 like `../../tmp/x` never becomes a key outside the store's prefix."""
    with pytest.raises(StoreError, match="malformed sha256"):
        store.key("../../../tmp/x")
    with pytest.raises(StoreError):
        store.exists("A" * 64)


def test_unreachable_stores_are_config_errors_with_a_clean_url() -> None:
    """An ftp:// store nobody listens on is exit 2 naming it; http:// keys are named once."""
    with pytest.raises(ConfigError) as err:
        Store("ftp://127.0.0.1:9/x")
    assert err.value.exit_code == 2 and "cannot reach the store ftp://127.0.0.1:9/x" in (
        err.value.message
    )
    h = "ab" * 32
    assert Store("http://127.0.0.1:9/x").where(h) == f"http://127.0.0.1:9/x/sha256/ab/{h[2:]}.mp4"
    down = Store("file:///x", fs=LocalFileSystem())
    error = down._error("cannot look up", h, ConnectionRefusedError(111, "refused"))
    assert error.exit_code == 2 and "cannot reach the store file:///x" in error.message


def test_put_refuses_a_file_that_no_longer_holds_the_recorded_video(
    store: Store, video: Path
) -> None:
    """A content-addressed store never holds other bytes under a key."""
    with pytest.raises(StoreIntegrityError, match="no longer holds"):
        store.put(video, "f" * 64)
    assert not store.exists("f" * 64)


class CutLocalFileSystem(LocalFileSystem):  # type: ignore[misc]
    """Writes half of an upload, then fails: an upload interrupted mid-copy."""

    def put_file(self, lpath: str, rpath: str, **kwargs: Any) -> None:
        data = Path(lpath).read_bytes()
        Path(rpath).write_bytes(data[: len(data) // 2])
        self.seen = Path(rpath)
        raise OSError("connection lost")


def test_an_interrupted_upload_is_never_visible(video: Path, tmp_path: Path) -> None:
    """file://: the bytes go to a temp name, renamed when whole; a cut upload leaves no key
    and no temp file, and a later upload still works."""
    root = tmp_path / "store"
    cut = CutLocalFileSystem(skip_instance_cache=True)
    store = Store(root.as_uri(), fs=cut)
    store.root = str(root)
    h = sha(VIDEO)
    with pytest.raises(Exception, match="connection lost"):
        store.put(video, h)
    assert cut.seen.name.endswith(".part") and cut.seen.parent == root / "sha256" / h[:2]
    assert not store.exists(h) and list((root / "sha256" / h[:2]).iterdir()) == []
    Store(root.as_uri()).put(video, h)
    assert Store(root.as_uri()).exists(h)


def test_an_interrupted_rename_leaves_no_key(video: Path, tmp_path: Path) -> None:
    """The key appears only by the rename: failing just before it leaves nothing visible."""

    class NoRename(LocalFileSystem):  # type: ignore[misc]
        def mv(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("killed before the rename")

    root = tmp_path / "store"
    store = Store(root.as_uri(), fs=NoRename(skip_instance_cache=True))
    store.root = str(root)
    with pytest.raises(Exception, match="killed"):
        store.put(video, sha(VIDEO))
    assert [p for p in root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("settings", "message", "hint"),
    [
        (StoreSettings("gs://bucket/x"), "gcsfs", "i2v-pipeline[gcs]"),
        (StoreSettings("nope://bucket/x"), "Protocol not known", "fsspec URL"),
        (StoreSettings("file:///x", "http://minio:9000"), "for s3:// stores", "remove"),
    ],
    ids=["extra-missing", "unknown-protocol", "endpoint-not-s3"],
)
def test_store_configuration_errors_name_the_fix(
    settings: StoreSettings, message: str, hint: str
) -> None:
    """A store that cannot be opened is a configuration error (exit 2) saying what to do."""
    pytest.importorskip("s3fs")
    if settings.url.startswith("gs://"):
        try:
            import gcsfs  # noqa: F401

            pytest.skip("gcsfs is installed")
        except ImportError:
            pass
    with pytest.raises(ConfigError) as err:
        Store.from_settings(settings)
    assert message in err.value.message and hint in err.value.hint
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("s3://AKIAXX:SEKRET123@bucket/p", "must not carry credentials (user:password@)"),
        ("file://user:SEKRET123@host/x", "file://***@host/x"),
        ("./store", "use file:///absolute/path"),
        ("/tmp/x/store", "use file:///absolute/path"),
        ("file:store", "use file:///absolute/path"),
        ("file://relstore", "use file:///absolute/path"),
        ("memory://x", "lives only as long as one command"),
    ],
)
def test_unusable_store_urls_are_refused_clearly(url: str, says: str) -> None:
    """Credentials, relative paths and memory:// are refused by the schema check or the
    settings, with a message saying what to use, never echoing a password."""
    doc = {"version": 1, "store": {"url": url}}
    with pytest.raises(ManifestError) as err:
        if schemas.is_valid("manifest", doc) or "file://" in url or "memory" in url:
            StoreSettings.from_manifest(doc)
        schemas.validate("manifest", doc)
    assert says in err.value.render() and "SEKRET123" not in err.value.render()
    if "SEKRET" in url:
        with pytest.raises(ManifestError) as err:
            schemas.validate("manifest", {**doc, "name": "t"})
        assert "SEKRET123" not in err.value.render() and "credentials" in err.value.message


@pytest.mark.parametrize(
    "store",
    [
        {"url": "s3://AKIAEXAMPLE:hunter22@bucket/x"},
        {"url": "s3://bucket/x", "endpoint_url": "http://user:hunter22@minio:9000"},
    ],
    ids=["url", "endpoint"],
)
def test_credentials_in_the_manifest_are_refused(store: dict[str, str]) -> None:
    """`user:password@` in store.url or endpoint_url is refused, and never echoed."""
    with pytest.raises(ManifestError) as err:
        StoreSettings.from_manifest({"store": store})
    assert "credentials" in err.value.message and "hunter22" not in err.value.render()
    assert not schemas.is_valid("manifest", {"version": 1, "store": store})


def test_manifest_schema_takes_a_store() -> None:
    """`store: {url, endpoint_url}` is part of the manifest schema; other keys are not."""
    base = {
        "version": 1,
        "name": "t",
        "images": [{"path": "a.png"}],
        "prompts": [{"id": "a", "template": "p"}],
    }
    good = {"url": "s3://bucket/team", "endpoint_url": "http://127.0.0.1:9000"}
    assert schemas.is_valid("manifest", {**base, "store": good})
    assert not schemas.is_valid("manifest", {**base, "store": {**good, "key": "AKIA"}})
    assert not schemas.is_valid("manifest", {**base, "store": {}})


def test_mask_hides_userinfo_only() -> None:
    """An endpoint's `user:password@` is masked in messages; the rest of the URL stays."""
    assert mask_userinfo("see http://u:secretpw@minio:9000/x") == "see http://***@minio:9000/x"
    assert mask_userinfo("s3://bucket/team") == "s3://bucket/team"


# ---------------------------------------------------------------- the lock's flag


def test_stored_flag_goes_through_journal_lockfile_and_schema() -> None:
    """A `stored` record flags the file; the lock line says so and reads back the same."""
    s = spec(0)
    entries = {s.fingerprint: done(s)}
    apply(entries, record("stored", s.fingerprint, i=0, sha256="a" * 64))
    e = dataclasses.replace(entries[s.fingerprint], intent_at="2026-11-25T10:00:00Z")
    assert e.files[0] is not None and e.files[0].stored
    line = entry_line(e)
    assert '"stored": true' in line
    doc = yaml.safe_load(render_lock([e], manifest="m.yaml", command="i2v", endpoint="x"))
    schemas.validate("lock", doc, error_class=LockError)
    assert entry_from_json(doc["jobs"][0]).files == e.files
    assert '"stored"' not in entry_line(done(s))  # unflagged files keep their old line


def test_a_lock_with_a_malformed_sha256_is_refused() -> None:
    """A lock line whose sha256 is not 64 lowercase hex digits (`../../../tmp/x`) is refused."""
    s = spec(0)
    doc = yaml.safe_load(render_lock([done(s)], manifest="m.yaml", command="i2v", endpoint="x"))
    job = doc["jobs"][0]
    job["files"][0]["sha256"] = "../../../tmp/x"
    with pytest.raises(ValueError, match="sha256"):
        entry_from_json(job)


def test_stored_flag_needs_the_same_content() -> None:
    """A `stored` record for other bytes than the file now held flags nothing; a new download
    of the same bytes keeps the flag, of other bytes drops it."""
    s = spec(0)
    fp = s.fingerprint
    entries = {fp: done(s)}
    apply(entries, record("stored", fp, i=0, sha256="b" * 64))
    assert not entries[fp].files[0].stored  # type: ignore[union-attr]
    apply(entries, record("stored", fp, i=0, sha256="a" * 64))
    same = record("downloaded", fp, i=0, path="out/x.mp4", sha256="a" * 64, bytes=100)
    apply(entries, same)
    assert entries[fp].files[0] == FileRecord("out/x.mp4", "a" * 64, 100, stored=True)
    other = record("downloaded", fp, i=0, path="out/x.mp4", sha256="c" * 64, bytes=100)
    apply(entries, other)
    assert not entries[fp].files[0].stored  # type: ignore[union-attr]


# ---------------------------------------------------------------- the plan


def _stored(s: Any, flagged: bool = True) -> Any:
    e = done(s, "job0.mp4")
    return dataclasses.replace(e, files=(dataclasses.replace(e.files[0], stored=flagged),))


@pytest.mark.parametrize(
    ("store", "flagged", "action"),
    [
        ("s3://bucket/team", True, Action.STORE),
        (None, True, Action.DOWNLOAD),
        ("s3://bucket/team", False, Action.DOWNLOAD),
    ],
    ids=["stored", "no-store", "not-uploaded"],
)
def test_plan_prefers_the_store_for_a_missing_file(
    store: str | None, flagged: bool, action: Action
) -> None:
    """A missing file the store holds is `⇣ store` (no credits, no API); otherwise a download."""
    s = spec(0)
    e = _stored(s, flagged)
    (item,) = make_plan(
        [s], {s.fingerprint: e}, prefix=".", probe=lambda rel: None, now=NOW,
        options=PlanOptions(store=store),
    )  # fmt: skip
    assert item.action is action and item.credits == 0
    if action is Action.STORE:
        assert item.reason == (
            "finished; job0.mp4 missing locally, held by the store s3://bucket/team "
            "(no API request)"
        )
        assert item.action.is_work and not item.action.submits


def test_plan_tries_the_store_once_the_url_expired_even_unflagged() -> None:
    """A miss drops the `stored` flag; once the result URL has expired the store is still
    tried first (the object may be back), instead of a download that can only fail."""
    s = spec(0)
    e = dataclasses.replace(_stored(s, False), expires_at="2020-01-01T00:00:00Z")
    (item,) = make_plan(
        [s], {s.fingerprint: e}, prefix=".", probe=lambda rel: None, now=NOW,
        options=PlanOptions(store="s3://bucket/team"),
    )  # fmt: skip
    assert item.action is Action.STORE and "tried from the store" in item.reason


def test_space_check_of_stored_videos_uses_the_locks_bytes(tmp_path: Path) -> None:
    """Videos coming from the store need exactly the bytes the lock records, not an estimate."""
    from i2v_pipeline.model import PlanItem
    from i2v_pipeline.run.preflight import _space_problems

    s = spec(0)
    e = _stored(s)  # one 100-byte video
    item = PlanItem(Action.STORE, s.id, s.fingerprint, "", s, e)
    assert _space_problems([item], tmp_path, lambda _: 100) == []
    assert _space_problems([item], tmp_path, lambda _: 99) != []


def test_plan_keeps_a_present_stored_file_fresh() -> None:
    """The store changes nothing for a file held locally."""
    s = spec(0)
    (item,) = make_plan(
        [s], {s.fingerprint: _stored(s)}, prefix=".", probe=lambda rel: 100, now=NOW,
        options=PlanOptions(store="s3://bucket/team"),
    )  # fmt: skip
    assert item.action is Action.FRESH


# ---------------------------------------------------------------- uploads during a run


def _link(tmp_path: Path, store: Store, video: Path) -> tuple[Any, dict[str, Any], list[Any]]:
    from i2v_pipeline.run.sharing import StoreLink

    s = spec(0)
    rel = video.relative_to(tmp_path).as_posix()
    e = done(s, rel)
    entries = {s.fingerprint: dataclasses.replace(e, files=(FileRecord(rel, sha(VIDEO), 1),))}
    seen: list[Any] = []

    def record(rec: dict[str, Any]) -> None:
        seen.append(rec)
        apply(entries, rec)

    link = StoreLink(
        store,
        base_dir=tmp_path,
        entries=entries,
        record=record,
        emit=seen.append,
        manifest="m.yaml",
    )
    return link, entries, seen


@pytest.mark.anyio
async def test_a_landed_video_uploads_in_the_background(video: Path, tmp_path: Path) -> None:
    """landed() returns at once while the upload is held; once it ends the file is flagged."""
    import threading

    import anyio

    gate = threading.Event()

    class HeldStore(Store):
        def put(self, local: Path, sha256: str) -> None:
            assert gate.wait(10)
            super().put(local, sha256)

    store = HeldStore((tmp_path / "store").as_uri())
    link, entries, seen = _link(tmp_path, store, video)
    (fp,) = entries
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.serve)
        link.landed(fp, 0, "out/a.mp4", sha(VIDEO), len(VIDEO))
        await anyio.sleep(0)  # the upload task starts, and waits on the gate
        assert seen == [] and not entries[fp].files[0].stored
        gate.set()
        link.close()
    assert [r["t"] for r in seen] == ["stored"] and entries[fp].files[0].stored
    assert link.uploaded == 1 and store.exists(sha(VIDEO))


@pytest.mark.anyio
async def test_a_failed_upload_is_a_notice_not_a_failure(video: Path, tmp_path: Path) -> None:
    """An upload that fails leaves the file unflagged and says so once, naming `i2v push`."""
    import anyio

    from i2v_pipeline.model import Event, EventKind

    class DownStore(Store):
        def put(self, local: Path, sha256: str) -> None:
            raise self._error("cannot upload to", sha256, OSError("connection refused"))

    store = DownStore((tmp_path / "store").as_uri())
    link, entries, seen = _link(tmp_path, store, video)
    (fp,) = entries
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.serve)
        link.landed(fp, 0, "out/a.mp4", sha(VIDEO), len(VIDEO))
        link.close()
    assert not entries[fp].files[0].stored and link.failed == 1
    assert all(isinstance(e, Event) and e.kind is EventKind.NOTICE for e in seen)
    assert "connection refused" in seen[0].detail and "`i2v push m.yaml`" in seen[-1].detail


@pytest.mark.anyio
@pytest.mark.parametrize("damage", ["truncated", "empty", "directory"])
async def test_push_reuploads_a_damaged_object(
    damage: str, store: Store, video: Path, tmp_path: Path
) -> None:
    """An object whose size is not the lock's `bytes` is not "already there": it is uploaded
    again, whole."""
    from i2v_pipeline.run.sharing import push

    s = spec(0)
    rec = FileRecord("out/a.mp4", sha(VIDEO), len(VIDEO))
    entries = {s.fingerprint: dataclasses.replace(done(s), files=(rec,))}
    key = tmp_path / "store" / "sha256" / rec.sha256[:2] / f"{rec.sha256[2:]}.mp4"
    key.parent.mkdir(parents=True)
    if damage == "directory":
        key.mkdir()
        (key / "junk").write_bytes(b"x")
    else:
        key.write_bytes(VIDEO[: len(VIDEO) // 2] if damage == "truncated" else b"")
    result = await push(store, entries, tmp_path, tmp_path / "out", lambda r: apply(entries, r))
    if damage != "directory":
        assert result.done == ["out/a.mp4"] and result.already == []
        assert key.read_bytes() == VIDEO
    else:  # where a directory squats the key, the upload at least is not skipped
        assert result.already == [] and (result.done or result.problems)


@pytest.mark.anyio
async def test_a_cancelled_fetch_leaves_no_temp_file(tmp_path: Path) -> None:
    """Cancelling aget mid-copy (Ctrl-C, SIGTERM) removes the temp file and stops the thread."""
    import threading

    import anyio

    release = threading.Event()

    class Stalling(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            if self.tell():  # the first chunk is written, then the source stalls
                release.wait(10)
            return super().read(min(n or 1, 1000))

    class StallingFileSystem(LocalFileSystem):  # type: ignore[misc]
        def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
            return {"name": path, "type": "file", "size": len(VIDEO)}

        def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            return Stalling(VIDEO)

    store = Store("file:///s", fs=StallingFileSystem())
    target = tmp_path / "a.mp4"
    try:
        with anyio.move_on_after(30) as scope:  # the deadline of the polling below
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.aget, sha(VIDEO), target, len(VIDEO))
                while not list(tmp_path.glob(".a.mp4.*.part")):  # the copy has begun
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        assert list(tmp_path.iterdir()) == []
    finally:
        release.set()  # the abandoned thread sees the stop flag and ends
