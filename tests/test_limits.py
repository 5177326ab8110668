"""The rate limiter on a fake clock: no burst, AIMD, Retry-After, cancelled waiters."""

from __future__ import annotations

import random

import anyio
import pytest

from i2v_pipeline.errors import ThrottledError, TransientError, UnknownOutcomeError
from i2v_pipeline.run.pacing import RateLimiter, backoff
from i2v_pipeline.run.retry import RetryPolicy, call


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def limiter(rate: float, clock: FakeClock) -> RateLimiter:
    return RateLimiter(rate, now=clock.now, sleep=clock.sleep)


@pytest.mark.anyio
async def test_no_initial_burst() -> None:
    """Ten calls at 5/s take 1.8 s of fake time: the first at once, then one every 0.2 s."""
    clock = FakeClock()
    lim = limiter(5, clock)
    times = []
    for _ in range(10):
        await lim.acquire()
        times.append(round(clock.t, 6))
    assert times == [round(i * 0.2, 6) for i in range(10)]


@pytest.mark.anyio
async def test_throttle_halves_rate_and_waits_retry_after() -> None:
    """A throttle halves the rate and no slot comes before Retry-After; recovery is gradual."""
    clock = FakeClock()
    lim = limiter(10, clock)
    await lim.acquire()
    lim.throttled(retry_after=2.0)
    assert lim.rate == 5
    await lim.acquire()
    assert clock.t == pytest.approx(2.0)
    lim.succeeded()
    assert lim.rate == 5  # too soon after the cut
    clock.t += 10
    lim.succeeded()
    assert lim.rate == pytest.approx(5.5)


@pytest.mark.anyio
async def test_cancelled_waiter_does_not_cause_a_burst() -> None:
    """Cancelling a waiter never lets the next callers through early."""
    lim = RateLimiter(20)
    await lim.acquire()
    with anyio.move_on_after(0.01):
        await lim.acquire()
        await lim.acquire()
    start = anyio.current_time()
    await lim.acquire()
    assert anyio.current_time() - start >= 0.05


def test_backoff_is_full_jitter() -> None:
    """Backoff stays within [0, min(cap, base * 2**n)]."""
    rng = random.Random(3)
    values = [backoff(n, base=0.5, cap=4, rng=rng) for n in range(10) for _ in range(20)]
    assert all(0 <= v <= 4 for v in values) and max(values) > 2


@pytest.mark.anyio
async def test_retry_policy() -> None:
    """Transient errors are retried, unknown outcomes never are."""
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise (
                ThrottledError("slow down", retry_after=0) if attempts == 1 else TransientError("x")
            )
        return "ok"

    lim = RateLimiter(1000)
    assert await call(flaky, lim, RetryPolicy(attempts=5, base=0.001)) == "ok"
    assert attempts == 3 and lim.throttles == 1

    sent = 0

    async def lost() -> str:
        nonlocal sent
        sent += 1
        raise UnknownOutcomeError("no answer")

    with pytest.raises(UnknownOutcomeError):
        await call(lost, lim, RetryPolicy(attempts=5, base=0.001))
    assert sent == 1
