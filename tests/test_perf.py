"""perf.gc_paused: bulk allocation without the cyclic GC, and without a deferred rescan."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

from i2v_pipeline.perf import frozen_heap, gc_paused

from .conftest import REPO


@pytest.fixture
def thawed() -> Iterator[None]:
    """No frozen heap during the test (an in-process `run` freezes it); refrozen after."""
    was_frozen = gc.get_freeze_count()
    gc.unfreeze()
    yield
    if was_frozen:
        gc.freeze()


class _Node:
    def __init__(self) -> None:
        self.other: object = self


def test_pause_leaves_no_young_backlog(thawed: None) -> None:
    """Leaving the pause sets off no collection that walks what was built during it."""
    runs: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        with gc_paused():
            kept = [[i] for i in range(50_000)]
        after = [[i] for i in range(10)]  # allocations after the pause, as any caller makes
    finally:
        gc.callbacks.remove(seen)
    assert runs == []
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert len(kept) + len(after) == 50_010


def test_cycles_made_in_a_pause_are_still_collected(thawed: None) -> None:
    """Objects built during the pause are not frozen away: their cyclic garbage is freed."""
    with gc_paused():
        node = _Node()
        ref = weakref.ref(node)
        del node
    assert ref() is not None  # a cycle: reference counts alone cannot free it
    gc.collect()
    assert ref() is None


def test_a_frozen_heap_stays_frozen(thawed: None) -> None:
    """Inside frozen_heap (a run), a pause keeps the heap frozen rather than thawing it; the
    heap is handed back to the GC when the block ends."""
    with frozen_heap():
        before = gc.get_freeze_count()
        with gc_paused():
            extra = [[i] for i in range(1_000)]
        assert gc.get_freeze_count() >= before + len(extra)  # the new lists joined it
    assert gc.get_freeze_count() == 0


def _exit_state(code: str) -> str:
    """What the last atexit hook of a child running code sees: a frozen or a thawed heap."""
    hook = "import atexit, gc\natexit.register(lambda: print(gc.get_freeze_count() > 0))\n"
    argv = [sys.executable, "-c", hook + code]
    return subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO).stdout


def test_a_process_that_built_bulk_data_exits_with_its_heap_frozen() -> None:
    """The interpreter's collections at exit do not walk what a bulk build left alive; a process
    that built nothing in bulk exits as it always did."""
    bulk = "from i2v_pipeline.perf import gc_paused\nwith gc_paused():\n    kept = [[1]] * 9\n"
    assert _exit_state(bulk).strip() == "True"
    assert _exit_state("import i2v_pipeline.perf\nkept = [[1]] * 9\n").strip() == "False"
