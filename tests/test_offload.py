"""run/offload.py: blocking calls in worker threads (results, errors, cancellation) and lanes
that run a kind of call inline only while it has been quick."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest

from i2v_pipeline.run import offload

pytestmark = pytest.mark.anyio


async def test_run_blocking_runs_in_a_thread_and_returns_or_raises() -> None:
    here = threading.get_ident()
    assert await offload.run_blocking(threading.get_ident) != here

    def boom() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await offload.run_blocking(boom)


async def test_a_started_call_runs_to_its_end_when_cancelled() -> None:
    """Cancelled while its call runs, the caller still waits for it (an fsync or a rename is
    never abandoned half-way); the cancellation lands at its next checkpoint."""
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(10)
        done.append("finished")
        return "result"

    got: list[str] = []
    async with anyio.create_task_group() as tg:

        async def caller() -> None:
            got.append(await offload.run_blocking(slow))
            await anyio.sleep(3600)  # the next checkpoint: here the cancellation lands

        tg.start_soon(caller)
        with anyio.fail_after(10):
            while not started.is_set():
                await anyio.sleep(0.005)
        tg.cancel_scope.cancel()
        release.set()
    assert done == ["finished"] and got == ["result"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Lane's stopwatch, driven by the test: each call to the lane's fn takes ticks[0] s."""
    now = [0.0]
    took = [0.0]

    def perf_counter() -> float:
        now[0] += took[0] / 2  # read twice per call: before and after
        return now[0]

    monkeypatch.setattr(offload.time, "perf_counter", perf_counter)
    yield took


async def test_a_lane_goes_inline_once_quick_and_back_to_threads_when_slow(
    clock: list[float],
) -> None:
    lane = offload.Lane("test")
    here = threading.get_ident()
    clock[0] = 0.0001
    first = await lane.run(threading.get_ident)
    assert first != here  # not trusted before it has been measured
    for _ in range(3):
        assert await lane.run(threading.get_ident) == here  # quick: inline
    clock[0] = 0.5  # the disk stalls: this call is inline, and tips the lane over
    assert await lane.run(threading.get_ident) == here
    assert await lane.run(threading.get_ident) != here
    clock[0] = 0.0001  # quick again: back inline after a few calls
    for _ in range(20):
        last = await lane.run(threading.get_ident)
    assert last == here
    assert await lane.run(threading.get_ident, may_inline=False) != here  # a large file
    assert lane.inline > 0 and lane.threaded >= 3


async def test_a_lane_passes_errors_through_either_way(clock: list[float]) -> None:
    lane = offload.Lane("test")

    def boom() -> None:
        raise ValueError("bad")

    for _ in range(3):  # the first threaded, the next ones inline
        with pytest.raises(ValueError, match="bad"):
            await lane.run(boom)
    assert lane.inline >= 1 and lane.threaded >= 1
