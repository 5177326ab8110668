"""Group commit of the journal's durable records keeps the crash model of docs/architecture.md:
an intent is on disk before its create is sent, and every record acknowledged as durable
survives a crash right after, however many share an fsync.

"On disk" is modelled by a Disk that snapshots the journal at each fsync's start: the bytes a
power cut would leave (writes racing the fsync are not counted as covered)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from i2v_pipeline.model import JobStatus
from i2v_pipeline.run.providers.base import Created
from i2v_pipeline.run.recorder import Recorder
from i2v_pipeline.state.journal import Entries, Journal, journal_path, record, replay

from .test_executor import FakeProvider, run

pytestmark = pytest.mark.anyio


class Disk:
    """os.fsync, recording what the journal held when each fsync began; while `slow` is not
    set, a journal fsync does not end (a slow disk: the records written meanwhile must wait)."""

    def __init__(self, journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.journal = journal
        self.durable = b""
        self.fsyncs = 0
        self.slow = threading.Event()
        self.slow.set()
        self.began = threading.Event()
        real: Callable[[int], None] = os.fsync

        def fsync(fd: int) -> None:
            if os.path.exists(journal) and os.fstat(fd).st_ino == os.stat(journal).st_ino:
                image = journal.read_bytes()  # before the real fsync: surely covered by it
                self.began.set()
                real(fd)
                self.slow.wait(10)
                self.durable, self.fsyncs = image, self.fsyncs + 1
            else:
                real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def after_crash(self, tmp: Path) -> Entries:
        """The state a run would replay after a power cut now."""
        image = tmp / "crashed.journal"
        image.write_bytes(self.durable)
        entries: Entries = {}
        replay(image, entries)
        return entries


def intents_in(data: bytes) -> list[dict[str, Any]]:
    return [r for line in data.splitlines() if (r := json.loads(line))["t"] == "intent"]


class CheckingProvider(FakeProvider):
    """Checks, at each create, that its intent is already on disk: in the file as a separate
    reader sees it, and in what the last fsync covered."""

    def __init__(self, disk: Disk) -> None:
        super().__init__([JobStatus.FAILED])
        self.disk = disk
        self.checked: list[str] = []

    async def create(self, request: Mapping[str, Any]) -> Created:
        prompt = request.fields["prompt"]  # type: ignore[attr-defined]
        with open(self.disk.journal, "rb") as reader:  # not the journal's own handle
            seen = intents_in(reader.read())
        assert seen and seen[-1]["request"]["prompt"] == prompt
        durable = intents_in(self.disk.durable)
        assert durable and durable[-1]["request"]["prompt"] == prompt
        assert len(durable) == self.creates + 1  # one intent per create, each before its own
        self.checked.append(prompt)
        return await super().create(request)


async def test_intent_is_fsynced_before_its_create_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each create is sent only after an fsync that covers its intent's line."""
    disk = Disk(journal_path(tmp_path / "m.lock.yaml"), monkeypatch)
    provider = CheckingProvider(disk)
    ex, _ = await run(tmp_path, provider, 12)
    assert provider.checked == [f"p{i}" for i in range(12)]
    assert ex.stats.created == 12
    created = [r for r in map(json.loads, disk.durable.splitlines()) if r["t"] == "created"]
    assert len(created) == 12  # and each answer was fsynced too


async def test_concurrent_durable_records_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """39 records written during an fsync share the next one, and none returns before an fsync
    that began after its line was written."""
    path = tmp_path / "j.journal"
    disk = Disk(path, monkeypatch)
    journal = Journal(path)
    recorder = Recorder(journal, {})
    late: list[str] = []
    disk.slow.clear()

    async def one(i: int) -> None:
        fp = f"{i:064x}"
        await recorder.record_durably(record("intent", fp, id=f"j{i}", attempt="a", request={}))
        if fp.encode() not in disk.durable:
            late.append(fp)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 0)
        with anyio.fail_after(10):
            while not disk.began.is_set():
                await anyio.sleep(0)
            for i in range(1, 40):  # all written while the first fsync is under way
                tg.start_soon(one, i)
            while journal.written < 40:
                await anyio.sleep(0)
        disk.slow.set()
    assert disk.fsyncs == 2
    journal.close()
    assert late == []
    assert len(recorder.entries) == 40


async def test_acknowledged_records_survive_a_crash_right_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling everything the moment records are acknowledged (a crash) loses none of them;
    records not yet acknowledged are never applied in memory."""
    path = tmp_path / "j.journal"
    disk = Disk(path, monkeypatch)
    journal = Journal(path)
    recorder = Recorder(journal, {})
    acknowledged: list[str] = []

    async def one(i: int, scope: anyio.CancelScope) -> None:
        fp = f"{i:064x}"
        await recorder.record_durably(record("intent", fp, id=f"j{i}", attempt="a", request={}))
        acknowledged.append(fp)
        if len(acknowledged) >= 3:
            scope.cancel()  # the crash: nothing after this point runs

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(one, i, tg.cancel_scope)
            if i % 7 == 6:  # arrivals in waves, so several fsyncs run
                await anyio.sleep(0)
    journal.close()
    assert len(acknowledged) >= 3
    survived = disk.after_crash(tmp_path)
    assert set(acknowledged) <= set(survived)
    assert set(recorder.entries) <= set(survived)  # memory never ran ahead of the disk


async def test_a_created_rides_the_next_intents_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`created` is flushed at once (a killed process keeps it: another reader sees it) and made
    durable by the next intent's fsync, with no fsync of its own."""
    path = tmp_path / "j.journal"
    disk = Disk(path, monkeypatch)
    recorder = Recorder(Journal(path), {})
    first, second = f"{1:064x}", f"{2:064x}"
    await recorder.record_durably(record("intent", first, id="j1", attempt="a", request={}))
    recorder.record(record("created", first, id="j1", attempt="a", ids=["r1"], credits=5))
    assert b'"created"' in path.read_bytes()  # in the OS's hands: survives a kill
    assert b'"created"' not in disk.durable and disk.fsyncs == 1
    await recorder.record_durably(record("intent", second, id="j2", attempt="b", request={}))
    assert disk.fsyncs == 2
    survived = disk.after_crash(tmp_path)
    assert survived[first].state == "submitted" and survived[first].remote_ids == ("r1",)
    recorder.journal.close()


async def test_records_not_waited_for_become_durable_within_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no further intent, keep_durable fsyncs what is left within its window; it fsyncs
    nothing when nothing is new."""
    path = tmp_path / "j.journal"
    disk = Disk(path, monkeypatch)
    recorder = Recorder(Journal(path), {})
    fp = f"{3:064x}"
    await recorder.record_durably(record("intent", fp, id="j3", attempt="a", request={}))
    recorder.record(record("created", fp, id="j3", attempt="a", ids=["r3"], credits=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.keep_durable, 0.01)
        with anyio.fail_after(10):
            while b'"created"' not in disk.durable:
                await anyio.sleep(0.01)
        fsyncs = disk.fsyncs
        written = recorder.journal.written
        with anyio.fail_after(10):  # a few more windows pass with nothing new
            while recorder.durable < written:
                await anyio.sleep(0.01)
        for _ in range(5):
            await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert disk.fsyncs == fsyncs  # idle windows cost no fsync
    assert disk.after_crash(tmp_path)[fp].remote_ids == ("r3",)
    recorder.journal.close()
