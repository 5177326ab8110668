"""glibc malloc settings for a run (run/memory.py) and what a run keeps per job: a long run's
memory stays flat."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import anyio
import pytest

from i2v_pipeline.run import memory
from i2v_pipeline.run import session as session_mod

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import MANIFEST
from .test_session import planned_session


def test_run_caps_malloc_arenas(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session's run caps the arenas before its worker threads start."""
    calls: list[int] = []
    monkeypatch.setattr(session_mod, "steady_malloc", lambda: calls.append(1))
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    session, work, _ = planned_session(path, emulator.base_url)
    session.stop()
    anyio.run(session.run, work)
    assert calls == [1]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)
def test_limit_arenas_sets_glibc_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    """On glibc mallopt(M_ARENA_MAX) is called and accepted."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.limit_arenas() is True


def test_user_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MALLOC_ARENA_MAX the user set is left alone."""
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert memory.limit_arenas() is False


def test_not_glibc_leaves_malloc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off Linux (macOS, Windows) nothing is called."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.limit_arenas() is False


def test_nothing_per_job_outlives_its_job(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """After a run (with a store) every per-job structure is empty again: the poller's jobs and
    schedule, the store's uploads in flight; what a run keeps is the lock's entries (and one
    sha256 per distinct video the store holds)."""
    store = (workdir / "store").as_uri()
    text = MANIFEST.format(url=emulator.base_url) + f'store: {{url: "{store}"}}\n'
    session, work, planned = planned_session(write_manifest(text), emulator.base_url)
    stats = anyio.run(session.run, work)
    assert stats.done == len(work) > 1 and stats.failed == 0
    executor = session._executor
    assert executor is not None
    schedule = executor.schedule
    assert executor.tracked == {} and schedule.due == {} and schedule._since == {}
    assert not schedule._late and not schedule._no_hook
    assert not executor.audio.waiting and not executor.audio.owned and not executor.audio.busy
    link = executor.delivery.store
    assert link is not None and link._busy == {}
    videos = {f.sha256 for e in planned.entries.values() for f in e.files if f is not None}
    assert link._held == videos and stats.stored == len(work)


PROBE = """
import ctypes, sys
from i2v_pipeline.run import memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks "
                "fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Mallinfo2

def mapped(size):
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    got = libc.mallinfo2().hblks > before
    libc.free(block)
    return got

if sys.argv[1] == "pin":
    assert memory.pin_mmap_threshold()
first = mapped(4 << 20)  # freed: glibc moves the threshold up to 4 MiB unless it is pinned
print(first, mapped(1 << 20))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)
@pytest.mark.parametrize(("how", "second"), [("pin", "True"), ("default", "False")])
def test_a_freed_large_block_moves_the_mmap_threshold_unless_pinned(how: str, second: str) -> None:
    """A freed 4 MiB block raises glibc's threshold, so the next 1 MiB block (a read buffer,
    a decoded frame) is carved from the heap, where freed it fragments the heap; pinned, it
    still gets its own mapping, given back when freed. In a fresh process: this one's heap
    may hold a free block large enough to serve either."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and "MALLOC" not in k}
    env["PYTHONPATH"] = str(Path(memory.__file__).parents[2])  # this checkout's i2v
    out = subprocess.run(
        [sys.executable, "-c", PROBE, how], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", second]


def test_user_mmap_threshold_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A threshold the user set (glibc's variable or tunable) is left alone."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert memory.pin_mmap_threshold() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert memory.pin_mmap_threshold() is False
