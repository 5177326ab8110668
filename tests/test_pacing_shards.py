"""Shards of one account: several RateLimiters, none aware of the others, share one throttling
server. A deterministic discrete-event simulation on a virtual clock (no real sleeps)."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Coroutine, Generator
from typing import Any

import pytest

from i2v_pipeline.run.pacing import RateLimiter, backoff


class _Wake:
    def __init__(self, at: float) -> None:
        self.at = at

    def __await__(self) -> Generator[float, None, None]:
        yield self.at


class VirtualLoop:
    """Runs coroutines whose only await is `sleep`, in order of wake-up time."""

    def __init__(self) -> None:
        self.t = 0.0
        self._queue: list[tuple[float, int, Coroutine[Any, Any, None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await _Wake(self.t + max(0.0, seconds))

    def spawn(self, coro: Coroutine[Any, Any, None], at: float) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), coro))

    def run(self) -> None:
        while self._queue:
            self.t, _, coro = heapq.heappop(self._queue)
            try:
                wake = coro.send(None)
            except StopIteration:
                continue
            heapq.heappush(self._queue, (wake, next(self._seq), coro))


class Server:
    """A token bucket of `rps` per second, one second deep, for the whole account."""

    def __init__(self, loop: VirtualLoop, rps: float) -> None:
        self.loop, self.rps = loop, rps
        self.tokens, self.at = rps, 0.0
        self.accepted = self.refused = 0

    def take(self) -> bool:
        self.tokens = min(self.rps, self.tokens + (self.loop.t - self.at) * self.rps)
        self.at = self.loop.t
        if self.tokens < 1:
            self.refused += 1
            return False
        self.tokens -= 1
        self.accepted += 1
        return True


def campaign(shards: int, mult: float, work: int, seed: int) -> tuple[float, int, Server]:
    """Each shard: `work` requests by 60 concurrent callers, 6 tries each as retry.call does,
    configured at mult x the account's 20/s. (makespan, failures, server)."""
    loop, rng = VirtualLoop(), random.Random(seed)
    server = Server(loop, 20.0)
    finished: list[float] = []
    failures = 0

    async def caller(lim: RateLimiter, left: list[int]) -> None:
        nonlocal failures
        while left[0] > 0:
            left[0] -= 1
            for attempt in range(6):
                await lim.acquire()
                if server.take():
                    lim.succeeded()
                    break
                lim.throttled(None)
                if attempt == 5:
                    failures += 1
                else:
                    await loop.sleep(backoff(attempt, rng=rng))
            finished.append(loop.t)

    for _ in range(shards):
        lim = RateLimiter(20.0 * mult, now=loop.now, sleep=loop.sleep)
        left, start = [work], rng.uniform(0, 1)  # shards start a moment apart, as CI jobs do
        for _ in range(60):
            loop.spawn(caller(lim, left), start)
    loop.run()
    return max(finished), failures, server


@pytest.mark.parametrize("mult", [1.0, 2.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_four_shards_share_the_account_limit(mult: float, seed: int) -> None:
    """Four shards each configured at (or 2x) the account's rate finish their equal work near
    the account's bound, with no failed request: AIMD shares the limit, none starves."""
    makespan, failures, server = campaign(4, mult, 600, seed)
    bound = 4 * 600 / 20.0
    assert makespan <= 1.2 * bound, (makespan, bound)
    assert failures == 0
    assert server.refused <= 0.15 * server.accepted


def test_a_rate_change_keeps_retry_after() -> None:
    """A late success raising the rate during a Retry-After wait never brings a slot forward."""
    loop = VirtualLoop()
    lim = RateLimiter(10.0, now=loop.now, sleep=loop.sleep)
    lim.throttled(retry_after=5.0)
    loop.t = 2.0
    lim.succeeded()  # an answer to a request sent before the throttle
    assert lim.rate > 9.5  # the quiet step was taken
    slots: list[float] = []

    async def one() -> None:
        await lim.acquire()
        slots.append(loop.t)

    loop.spawn(one(), 2.0)
    loop.run()
    assert slots == [5.0]
