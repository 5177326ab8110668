"""The rate limiter on a fake clock: no burst, AIMD, Retry-After, cancelled waiters."""

from __future__ import annotations

import random

import anyio
import pytest

from i2v_pipeline.errors import ThrottledError, TransientError, UnknownOutcomeError
from i2v_pipeline.run.pacing import RateLimiter, backoff, lanes
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
async def test_first_throttle_backs_off_a_little_and_waits_retry_after() -> None:
    """A lone throttle costs 5 % of the rate, not half; no slot before Retry-After; then each
    quiet second adds a step (2 % of the configured rate), doubling while it stays quiet."""
    clock = FakeClock()
    lim = limiter(100, clock)
    await lim.acquire()
    lim.throttled(retry_after=2.0)
    assert lim.rate == pytest.approx(95)
    await lim.acquire()
    assert clock.t == pytest.approx(2.0)
    lim.succeeded()
    assert lim.rate == pytest.approx(97)  # quiet since the cut: + 2
    clock.t += 0.5
    lim.succeeded()
    assert lim.rate == pytest.approx(97)  # too soon after the last step
    clock.t += 1.0
    lim.succeeded()
    assert lim.rate == pytest.approx(100)  # + 4, capped at the configured rate


class Bucket:
    """The server side: a token bucket of `rps` per second, `burst` deep, on the fake clock."""

    def __init__(self, clock: FakeClock, rps: float, burst: float) -> None:
        self.clock, self.rps, self.burst = clock, rps, burst
        self.tokens, self.at = burst, 0.0
        self.accepted: list[float] = []
        self.refused = 0

    async def request(self) -> None:
        now = self.clock.t
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rps)
        self.at = now
        if self.tokens < 1:
            self.refused += 1
            raise ThrottledError("code 1005")
        self.tokens -= 1
        self.accepted.append(now)


async def drive(lim: RateLimiter, bucket: Bucket, seconds: float) -> None:
    while bucket.clock.t < seconds:
        await call(
            bucket.request, lim, RetryPolicy(attempts=50, base=0.0), sleep=bucket.clock.sleep
        )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("configured", "refused", "share"),
    [(20.0, 0.0, 0.975), (21.0, 0.01, 0.975), (40.0, 0.02, 0.975), (80.0, 0.045, 0.96)],
)
async def test_converges_just_under_the_account_limit(
    configured: float, refused: float, share: float
) -> None:
    """Configured at, near, 2x or 4x a 20/s limit: the limiter learns it and runs at 97.5-100 %
    of it (96 % when 4x) with few throttles (its probes above the limit, which let shards of one
    account reclaim what a finished one freed, cost one per cycle), never halving below it."""
    clock = FakeClock()
    bucket = Bucket(clock, rps=20, burst=20)
    lim = limiter(configured, clock)
    await drive(lim, bucket, 60.0)
    late = [t for t in bucket.accepted if t >= 20]
    assert len(late) / (clock.t - 20) >= share * 20
    assert lim.rate <= 20.0 * 1.1  # near the limit (a probe may be just past it), not 2x
    assert bucket.refused <= refused * len(bucket.accepted)


@pytest.mark.anyio
async def test_shared_budget_paces_creates_and_polls_together() -> None:
    """With a shared budget, creates and polls together stay within the account's rate; creates
    alone also stay under create_rps when it is lower."""
    clock = FakeClock()
    create, poll = lanes(20, 20, True, clock.now, clock.sleep)
    for _ in range(20):
        await create.acquire()
        await poll.acquire()
    assert clock.t == pytest.approx(39 / 20)
    clock = FakeClock()
    create, poll = lanes(20, 20, False, clock.now, clock.sleep)
    for _ in range(20):
        await create.acquire()
        await poll.acquire()
    assert clock.t == pytest.approx(19 / 20)
    clock = FakeClock()
    create, poll = lanes(2, 10, True, clock.now, clock.sleep)
    for _ in range(5):
        await create.acquire()
    assert clock.t == pytest.approx(2.0)
    create.throttled(None)
    assert create.throttles == 1 and poll.throttles == 1  # one account learns from both


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
