"""A run's uploads (run/sharing.py StoreLink): one look-up per video and run, an upload only
when the store lacks the video, copies of one video uploaded once, every file flagged."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from i2v_pipeline.errors import StoreError, StoreIntegrityError
from i2v_pipeline.model import FileRecord, LockEntry
from i2v_pipeline.run.sharing import StoreLink
from i2v_pipeline.run.store import Store
from i2v_pipeline.state.journal import apply

from .test_plan import done, spec
from .test_store import VIDEO, sha

OTHER = VIDEO[::-1] + b"another video"


class CountingStore(Store):
    """A file:// store that counts its look-ups and uploads (and may refuse every upload)."""

    def __init__(self, url: str, *, down: bool = False) -> None:
        super().__init__(url)
        self.looked: list[str] = []
        self.put_calls: list[str] = []
        self.down = down

    def size(self, sha256: str) -> int | None:
        self.looked.append(sha256)
        return super().size(sha256)

    def put(self, local: Path, sha256: str) -> None:
        self.put_calls.append(sha256)
        if self.down:
            raise self._error("cannot upload to", sha256, OSError("connection refused"))
        super().put(local, sha256)


def files(tmp_path: Path, contents: list[bytes]) -> tuple[dict[str, LockEntry], list[str]]:
    """One finished job per content, its file written under out/ and recorded unflagged."""
    entries: dict[str, LockEntry] = {}
    paths = []
    for n, data in enumerate(contents):
        rel = f"out/{n}.mp4"
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(data)
        s = spec(n)
        rec = FileRecord(rel, sha(data), len(data))
        entries[s.fingerprint] = dataclasses.replace(done(s, rel), files=(rec,))
        paths.append(rel)
    return entries, paths


async def land_all(store: Store, tmp_path: Path, contents: list[bytes]) -> Any:
    """Every file lands at once (as concurrent downloads finish), then the run ends."""
    entries, paths = files(tmp_path, contents)
    seen: list[Any] = []

    def record(rec: dict[str, Any]) -> None:
        seen.append(rec)
        apply(entries, rec)

    link = StoreLink(store, base_dir=tmp_path, entries=entries, record=record, emit=seen.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.serve)
        for (fp, e), rel in zip(entries.items(), paths, strict=True):
            link.landed(fp, 0, rel, e.files[0].sha256, e.files[0].bytes)  # type: ignore[union-attr]
        link.close()
    flagged = [e.files[0].stored for e in entries.values()]  # type: ignore[union-attr]
    return link, flagged, seen


@pytest.mark.anyio
async def test_copies_of_one_video_are_uploaded_once(tmp_path: Path) -> None:
    """Five files, two distinct videos, landing together: two look-ups, two uploads, five
    files flagged stored (the journal says so for each)."""
    store = CountingStore((tmp_path / "store").as_uri())
    link, flagged, seen = await land_all(store, tmp_path, [VIDEO, VIDEO, OTHER, VIDEO, OTHER])
    assert sorted(store.put_calls) == sorted([sha(VIDEO), sha(OTHER)])
    assert sorted(store.looked) == sorted([sha(VIDEO), sha(OTHER)])
    assert flagged == [True] * 5 and [r["t"] for r in seen] == ["stored"] * 5
    assert (link.uploaded, link.stored, link.failed) == (2, 5, 0)
    assert store.exists(sha(VIDEO)) and store.exists(sha(OTHER))


@pytest.mark.anyio
async def test_a_video_the_store_holds_is_not_uploaded_again(tmp_path: Path) -> None:
    """A teammate's run (or an earlier one) stored the video: one look-up, no upload, and the
    files are flagged stored all the same."""
    store = CountingStore((tmp_path / "store").as_uri())
    (tmp_path / "held.mp4").write_bytes(VIDEO)
    Store(store.url).put(tmp_path / "held.mp4", sha(VIDEO))
    link, flagged, _ = await land_all(store, tmp_path, [VIDEO, VIDEO, VIDEO])
    assert store.put_calls == [] and store.looked == [sha(VIDEO)]
    assert flagged == [True] * 3 and (link.uploaded, link.stored) == (0, 3)


@pytest.mark.anyio
async def test_an_object_of_the_wrong_size_is_uploaded_again(tmp_path: Path) -> None:
    """Keyed by content, an object of the recorded size is that video; a truncated one is not
    (as `push`): it is replaced by the whole video."""
    store = CountingStore((tmp_path / "store").as_uri())
    key = Path(store.key(sha(VIDEO)))
    key.parent.mkdir(parents=True)
    key.write_bytes(VIDEO[:100])
    link, flagged, _ = await land_all(store, tmp_path, [VIDEO, VIDEO])
    assert store.put_calls == [sha(VIDEO)] and key.read_bytes() == VIDEO
    assert flagged == [True, True] and link.uploaded == 1


@pytest.mark.anyio
async def test_a_failed_video_is_tried_once_per_run(tmp_path: Path) -> None:
    """The store refuses the upload: the run tries each video once, flags nothing, counts every
    file not stored and says so (one reason, then the count naming `i2v push`)."""
    store = CountingStore((tmp_path / "store").as_uri(), down=True)
    link, flagged, seen = await land_all(store, tmp_path, [VIDEO, VIDEO, VIDEO])
    assert store.put_calls == [sha(VIDEO)] and flagged == [False] * 3
    assert (link.uploaded, link.stored, link.failed) == (0, 0, 3)
    assert "connection refused" in seen[0].detail and "3 videos not uploaded" in seen[-1].detail
    assert len(seen) == 2


@pytest.mark.anyio
async def test_an_unreachable_store_on_look_up_is_a_failed_upload(tmp_path: Path) -> None:
    """The existence check failing is an upload that did not happen, not a crash."""

    class Unreachable(CountingStore):
        def size(self, sha256: str) -> int | None:
            raise StoreError("cannot look up the object: connection refused")

    store = Unreachable((tmp_path / "store").as_uri())
    link, flagged, _ = await land_all(store, tmp_path, [VIDEO, OTHER])
    assert store.put_calls == [] and flagged == [False, False] and link.failed == 2


@pytest.mark.anyio
async def test_a_folder_at_the_key_is_no_upload(tmp_path: Path) -> None:
    """A folder where the object belongs: nothing is moved into it, nothing flagged stored,
    and the notice says what to remove."""
    store = CountingStore((tmp_path / "store").as_uri())
    key = Path(store.key(sha(VIDEO)))
    key.mkdir(parents=True)
    link, flagged, seen = await land_all(store, tmp_path, [VIDEO])
    assert flagged == [False] and link.uploaded == 0 and list(key.iterdir()) == []
    assert any("a folder stands where" in getattr(e, "detail", "") for e in seen)


@pytest.mark.anyio
async def test_an_object_refused_by_hash_is_replaced_by_the_new_download(tmp_path: Path) -> None:
    """Same size, other bytes: restore refuses it (the run then asks the API), and the video
    that lands next replaces it whatever its size says."""
    store = CountingStore((tmp_path / "store").as_uri())
    key = Path(store.key(sha(VIDEO)))
    key.parent.mkdir(parents=True)
    key.write_bytes(bytes(len(VIDEO)))  # the right size, the wrong content
    entries, paths = files(tmp_path, [VIDEO])
    fp = next(iter(entries))
    (tmp_path / paths[0]).unlink()  # the clone has the lock, not the file
    link = StoreLink(
        store,
        base_dir=tmp_path,
        entries=entries,
        record=lambda r: apply(entries, r),
        emit=lambda e: None,
    )
    with pytest.raises(StoreIntegrityError):
        await link.restore(spec(0), paths)  # the job files() made first
    (tmp_path / paths[0]).write_bytes(VIDEO)  # the API's download lands
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.serve)
        link.landed(fp, 0, paths[0], sha(VIDEO), len(VIDEO))
        link.close()
    assert key.read_bytes() == VIDEO and link.uploaded == 1
