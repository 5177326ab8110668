"""Request pacing: a rate limiter with no initial burst that learns an account's limit.

It is a virtual-scheduling limiter (GCRA with a burst of one): each caller reserves the next free
slot, `1/rate` after the previous one, and sleeps until it. Unlike a full token bucket it never
lets a burst through at start, which is exactly what an API that throttles per second punishes.

On throttling it does not halve (a configured rate near the real limit would then run at half of
it, oscillating under it): the first throttle of an episode backs off by a small factor, and once
throttles keep coming it measures the rate the server accepted between them (a throttling
server's bucket is empty at both ends, so that rate is its limit) and settles at 95 % of it. It
then probes up by 1 % per quiet period, up to the learned limit (while it is recent) and never
above the configured rate. Retry-After is honoured.
The clock and sleep are injected so tests move a fake clock.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

Now = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SETTLE = 0.95
"""Fraction of a learned limit to run at: just under it, so throttles stay rare."""
BACKOFF = 0.95
"""The first throttle of an episode: a small step down (the rate may be the limit itself)."""
PROBE = 1.01
"""Each quiet period the rate climbs this much, back towards the configured rate."""
MEASURE_MIN = 0.5
"""Seconds of throttled traffic needed before the accepted rate is trusted as the limit."""
EPISODE = 5.0
"""Throttles further apart than this start a new episode."""
FORGET = 60.0
"""Seconds without a throttle after which a learned limit no longer caps the probing."""


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        min_rate: float | None = None,
        recover_after: float = 5.0,
        now: Now | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = rate
        self.rate = rate
        self.min_rate = min_rate if min_rate is not None else rate / 16
        self.recover_after = recover_after
        self._now = now or anyio.current_time
        self._sleep = sleep or anyio.sleep
        self._next: float | None = None
        self._last_change = float("-inf")
        self._anchor: float | None = None
        """When the current throttle episode's measurement started."""
        self._last_throttle = float("-inf")
        self._accepted: deque[float] = deque()
        """Times of successes since the anchor (bounded by the episode)."""
        self.learned: float | None = None
        self.throttles = 0

    async def acquire(self) -> None:
        """Wait for this caller's slot. Cancelling a waiter leaves a gap; it never bursts."""
        now = self._now()
        slot = now if self._next is None else max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await self._sleep(slot - now)

    def idle(self, within: float = 0.0) -> bool:
        """True when a caller would get a slot within `within` seconds: no backlog of callers,
        so the rate is not what holds work back."""
        return self._next is None or self._next <= self._now() + within

    def throttled(self, retry_after: float | None = None) -> None:
        """Learn the limit from the accepted rate; no slot before Retry-After has passed."""
        now = self._now()
        self.throttles += 1
        if now - self._last_throttle > EPISODE or self._anchor is None:
            self._anchor = now  # a new episode: step down a little, start measuring
            self._accepted.clear()
            self._set(self.rate * BACKOFF, now)
        elif now - self._anchor >= MEASURE_MIN:
            accepted = len(self._accepted) / (now - self._anchor)
            self.learned = accepted
            self._set(min(self.rate, accepted * SETTLE), now)
            self._anchor = now
            self._accepted.clear()
        self._last_throttle = now
        if retry_after:
            self._next = max(self._next or now, now + retry_after)

    def _set(self, rate: float, now: float) -> None:
        self.rate = max(self.min_rate, rate)
        self._last_change = now

    def succeeded(self) -> None:
        """Count the success for the measurement; probe up once per quiet period."""
        now = self._now()
        if now - self._last_throttle <= EPISODE:
            self._accepted.append(now)
        ceiling = self.max_rate
        if self.learned is not None and now - self._last_throttle < FORGET:
            ceiling = min(ceiling, self.learned)  # past the limit a probe only earns throttles
        if self.rate < ceiling and now - self._last_change > self.recover_after:
            self._set(min(ceiling, self.rate * PROBE), now)


class Lane:
    """One kind of call (creates, polls) on a shared account budget: its own cap, then the
    account's slot. Throttles teach the account limiter, which both lanes share."""

    def __init__(self, cap: RateLimiter | None, account: RateLimiter) -> None:
        self.cap, self.account = cap, account

    @property
    def throttles(self) -> int:
        return self.account.throttles

    async def acquire(self) -> None:
        if self.cap is not None:
            await self.cap.acquire()
        await self.account.acquire()

    def idle(self, within: float = 0.0) -> bool:
        return (self.cap is None or self.cap.idle(within)) and self.account.idle(within)

    def throttled(self, retry_after: float | None = None) -> None:
        self.account.throttled(retry_after)

    def succeeded(self) -> None:
        self.account.succeeded()


def lanes(
    create_rps: float, request_rps: float, shared: bool, now: Now | None, sleep: Sleep | None
) -> tuple[Lane, Lane]:
    """The create and the request lanes. Shared: one account budget of the larger rate (users
    write the account's limit in both), creates also capped at create_rps."""
    if not shared:
        return (
            Lane(None, RateLimiter(create_rps, now=now, sleep=sleep)),
            Lane(None, RateLimiter(request_rps, now=now, sleep=sleep)),
        )
    account = RateLimiter(max(create_rps, request_rps), now=now, sleep=sleep)
    cap = RateLimiter(create_rps, now=now, sleep=sleep) if create_rps < account.rate else None
    return Lane(cap, account), Lane(None, account)


def backoff(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt))."""
    return (rng or random).uniform(0, min(cap, base * (2**attempt)))
