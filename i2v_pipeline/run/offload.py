"""Blocking calls that every job makes (the journal's fsyncs, sealing a download), run where
they cost least: inline while they are quick, else off the event loop.

`run_blocking` hands a call to a small pool of daemon threads: one queue put and one
`call_soon_threadsafe`, about a third of what `anyio.to_thread.run_sync` costs. A `Lane` is one
kind of call: it runs inline on the event loop while that kind has taken under
`INLINE_BELOW` (a thread hop, two wake-ups, costs more CPU than a quick fsync of a few kB), and
in the pool as soon as it does not (a slow disk, a large file), so the loop is never held for
long more than once.

Like `anyio.to_thread.run_sync` (abandon_on_cancel=False), a call once made runs to its end and
the caller gets its result: a cancellation reaches the caller at its next checkpoint, never in
the middle of an fsync or a rename. The event loop must be asyncio's (aiohttp's already is)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
THREADS = 8
"""At most this many calls run at once; further ones queue (FIFO)."""

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class _Pool:
    """Threads that take calls from one queue; a new one starts only when a call finds none
    waiting. The waiting count is kept without a lock (the hot path takes none): a count off
    by one after a race starts a thread early or lets a call wait for a busy one, never more,
    since every thread serves the queue for good."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._threads = 0
        self._waiting = 0

    def submit(self, item: _Item) -> None:
        self._queue.put(item)
        if self._waiting <= 0 and self._threads < self.most:
            self._threads += 1
            threading.Thread(target=self._work, name="i2v-offload", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._waiting += 1
            loop, future, fn = self._queue.get()
            self._waiting -= 1
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the caller, as anyio's threads do
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for it
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_pool = _Pool(THREADS)


async def run_blocking(fn: Callable[[], T]) -> T:
    """fn() in a worker thread; its result (or exception) once it has run to the end."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    _pool.submit((loop, future, fn))
    with anyio.CancelScope(shield=True):  # the call runs to its end: wait for what it did
        result = await future
    return result


INLINE_BELOW = 0.002
"""Seconds: a kind of call that has been taking less runs inline."""


class Lane:
    """One kind of blocking call and how long it has been taking (a moving average, seconds).
    The first call goes to a thread: a kind is trusted to be quick only once it has been."""

    def __init__(self, name: str, inline_below: float = INLINE_BELOW) -> None:
        self.name, self.inline_below = name, inline_below
        self.typical: float | None = None
        self.inline = 0
        self.threaded = 0

    async def run(self, fn: Callable[[], T], *, may_inline: bool = True) -> T:
        """fn()'s result, inline or in a thread; may_inline=False always takes the thread."""
        if may_inline and self.typical is not None and self.typical < self.inline_below:
            self.inline += 1
            return self._timed(fn)
        self.threaded += 1
        return await run_blocking(lambda: self._timed(fn))

    def _timed(self, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            took = time.perf_counter() - started
            last = took if self.typical is None else self.typical
            self.typical = 0.7 * last + 0.3 * took  # one slow call tips it at once
