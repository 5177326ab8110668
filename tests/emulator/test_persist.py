"""The emulator keeps its account across SIGKILL and SIGTERM: real `i2v emulator serve`
processes on one `--state` file, plus in-process checks of replay and compaction."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from i2v_pipeline.emulator import Emulator, EmulatorConfig, ManualClock
from i2v_pipeline.emulator.account import State
from i2v_pipeline.emulator.persist import Persistence, StateBusy

V4 = "/api/open/v4/image2Video"
KEY = {"x-api-key": "emulator-key"}
BODY = {"image_url": "https://example.com/a.png", "prompt": "p", "resolution": "720p"}


def call(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url + path,
        data=data,
        headers={**KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)  # type: ignore[no-any-return]


class Served:
    """One `i2v emulator serve --port 0 --state F` process; its URL read with a deadline."""

    def __init__(self, tmp: Path, state: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "i2v_pipeline", "emulator", "serve"),
                *("--port", "0", "--state", str(state), "--cache-dir", str(tmp / "renders")),
                *("--queue-time", "3600"),  # jobs stay at status 1: deletable, nothing due
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=30):
            self.proc.kill()
            raise AssertionError("the emulator printed no URL within 30 s")
        self.url = self.proc.stdout.readline().decode().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def results(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        doc = call(self.url, f"{V4}/resultsByIds", {"_ids": ",".join(ids)})
        return {r["_id"]: r for r in doc["data"]["result"]}

    def credit(self) -> float:
        return float(call(self.url, "/api/open/v3/faceswap/quota/info")["data"]["credit"])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(state: Path, *extra: str) -> Served:
        started.append(Served(tmp_path, state, *extra))
        return started[-1]

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(timeout=30)


def buy(url: str) -> tuple[list[str], str]:
    """Three batch jobs and one single create; the single one is deleted again."""
    doc = call(url, f"{V4}/createBySourcePrompt/batch", {**BODY, "video_length": 5, "count": 3})
    kept = [j["_id"] for j in doc["data"]["successList"]]
    gone = call(url, f"{V4}/createBySourcePrompt", {**BODY, "video_length": 10})["data"]["_id"]
    assert call(url, f"{V4}/delbyids", {"_ids": gone})["data"]["successIds"] == [gone]
    return kept, gone


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_account_survives_kill_and_term(tmp_path: Path, serve: Any, sig: int) -> None:
    """Jobs, deletions, credits and the id sequence survive SIGKILL and SIGTERM of the server."""
    state = tmp_path / "state.json"
    first = serve(state)
    kept, gone = buy(first.url)
    credit = first.credit()
    assert credit < 1_000_000
    code = first.stop(sig)
    journal = state.with_name("state.json.journal").read_bytes()
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL and journal.count(b"\n") == 3  # create x2, delete
    else:
        assert code == 0 and journal == b""  # clean stop: compacted into the snapshot
        assert len(json.loads(state.read_text())["jobs"]) == 4

    second = serve(state)
    found = second.results([*kept, gone])
    assert sorted(found) == sorted(kept) and {r["status"] for r in found.values()} == {1}
    assert second.credit() == credit
    new = call(second.url, f"{V4}/createBySourcePrompt", {**BODY, "video_length": 5})
    assert new["data"]["_id"] not in (*kept, gone)


def test_leftover_tmp_is_removed_at_start(tmp_path: Path, serve: Any) -> None:
    """A snapshot temp file left by a compaction killed before its rename is cleaned at start."""
    state = tmp_path / "state.json"
    leftover = tmp_path / "state.json.tmp"
    leftover.write_text('{"jobs": [')
    serve(state)
    assert not leftover.exists() and json.loads(state.read_text())["jobs"] == []


def test_second_server_on_one_state_file_is_refused(tmp_path: Path, serve: Any) -> None:
    """Two emulators journaling into one file would lose jobs: the second exits 2, no traceback."""
    state = tmp_path / "state.json"
    serve(state)
    cmd = [sys.executable, "-m", "i2v_pipeline", "emulator", "serve", "--port", "0"]
    out = subprocess.run([*cmd, "--state", str(state)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "in use by another emulator" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_throttle_flags_limit_the_account(tmp_path: Path, serve: Any) -> None:
    """`serve --throttle-rps R --throttle-scope account`: one budget across endpoints, 1005 past
    it in an HTTP 200 envelope (R = 0.01/s: the bucket of 1 cannot refill during the test)."""
    served = serve(tmp_path / "s.json", "--throttle-rps", "0.01", "--throttle-scope", "account")
    assert served.credit() == 1_000_000
    assert call(served.url, f"{V4}/resultsByIds", {"_ids": "x"})["code"] == 1005


def _crash(persist: Persistence) -> None:
    """What SIGKILL leaves: the journal as written, no compaction, the lock released."""
    assert persist._fd is not None
    os.close(persist._fd)
    persist._fd = None
    persist._unlock()


def test_replay_derives_refunds_once_and_skips_a_torn_line(tmp_path: Path) -> None:
    """A failed job refunded before the crash is not refunded twice on replay; a torn last line
    (a write cut by the kill, never answered) is ignored."""
    path, clock = tmp_path / "s.json", ManualClock()
    cfg = EmulatorConfig(fail_share=1.0, queue_time=0, processing_time=1, credits=100)
    state = State(cfg, clock)
    persist = Persistence(state, path)
    persist.open()
    state.create({**BODY, "video_length": 5}, 1, batch=False)
    clock.advance(2)
    state.advance()  # status 4: refunded
    state.create({**BODY, "video_length": 5}, 1, batch=False)
    state.advance()
    assert state.account.credits == 80  # 100, -20, +20 refund, -20
    before = sorted((j.id, j.status) for j in state.jobs.values())
    _crash(persist)
    with open(path.with_name("s.json.journal"), "ab") as f:
        f.write(b'{"op":"delete","ids":["')

    again = State(cfg, clock)
    Persistence(again, path).open()
    again.advance()
    assert again.account.credits == 80
    assert sorted((j.id, j.status) for j in again.jobs.values()) == before
    assert [s for _, s in before] == [4, 2]


def test_replay_after_a_half_done_compaction_charges_once(tmp_path: Path) -> None:
    """Killed after the snapshot's rename but before the journal was emptied: the jobs are in
    both, and replay (idempotent by id) charges them once."""
    path, clock = tmp_path / "s.json", ManualClock()
    cfg = EmulatorConfig(queue_time=100, credits=100)
    state = State(cfg, clock)
    persist = Persistence(state, path)
    persist.open()
    state.create({**BODY, "video_length": 5}, 2, batch=True)
    journal = path.with_name("s.json.journal").read_bytes()
    persist.compact()
    path.with_name("s.json.journal").write_bytes(journal)
    _crash(persist)

    again = State(cfg, clock)
    Persistence(again, path).open()
    assert again.account.credits == 60 and len(again.jobs) == 2


@pytest.mark.anyio
async def test_embedded_state_busy_in_process(tmp_path: Path) -> None:
    """An Emulator on a state file another one holds raises StateBusy before taking a port."""
    cfg = EmulatorConfig(cache_dir=tmp_path, state_file=tmp_path / "s.json")
    async with Emulator(cfg):
        with pytest.raises(StateBusy):
            await Emulator(cfg).start()
    async with Emulator(cfg) as e:  # released on stop
        assert e.persist is not None


def test_group_fsync_not_per_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records are written at once but fsync'd in groups: many creates, one fsync per sync()."""
    path = tmp_path / "s.json"
    state = State(EmulatorConfig(), ManualClock())
    persist = Persistence(state, path)
    persist.open()
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    for _ in range(20):
        state.create({**BODY, "video_length": 5}, 1, batch=False)
    assert path.with_name("s.json.journal").read_bytes().count(b"\n") == 20 and synced == []
    persist.sync()
    persist.sync()  # nothing new: no second fsync
    assert len(synced) == 1
    monkeypatch.undo()
    persist.close()


@pytest.mark.anyio
async def test_journal_is_compacted_periodically(tmp_path: Path) -> None:
    """Once the journal holds journal_compact records the running emulator folds it into the
    snapshot (not only at shutdown)."""
    path = tmp_path / "s.json"
    cfg = EmulatorConfig(cache_dir=tmp_path, state_file=path, journal_compact=3, queue_time=99)
    async with Emulator(cfg) as e, aiohttp.ClientSession() as s:
        for _ in range(3):
            url = e.base_url + f"{V4}/createBySourcePrompt"
            async with s.post(url, json={**BODY, "video_length": 5}, headers=KEY) as r:
                assert (await r.json())["code"] == 1000
        with anyio.fail_after(10):
            while len(orjson.loads(path.read_bytes())["jobs"]) < 3:
                await anyio.sleep(0.02)
        assert path.with_name("s.json.journal").read_bytes() == b""
