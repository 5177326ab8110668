"""Request pacing: a rate limiter with no initial burst that slows down on throttling (AIMD).

It is a virtual-scheduling limiter (GCRA with a burst of one): each caller reserves the next free
slot, `1/rate` after the previous one, and sleeps until it. Unlike a full token bucket it never
lets a burst through at start, which is exactly what an API that throttles per second punishes.
On a throttle signal the rate halves and waits out Retry-After; after a quiet period it climbs
back by a small step per success. The clock and sleep are injected so tests move a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio

Now = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


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
        self._last_cut = float("-inf")
        self.throttles = 0

    async def acquire(self) -> None:
        """Wait for this caller's slot. Cancelling a waiter leaves a gap; it never bursts."""
        now = self._now()
        slot = now if self._next is None else max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await self._sleep(slot - now)

    def throttled(self, retry_after: float | None = None) -> None:
        """Multiplicative decrease, and no slot before Retry-After has passed."""
        now = self._now()
        self.throttles += 1
        if now - self._last_cut > 1.0 / self.rate:  # one cut per burst of throttle answers
            self.rate = max(self.min_rate, self.rate / 2)
            self._last_cut = now
        if retry_after:
            self._next = max(self._next or now, now + retry_after)

    def succeeded(self) -> None:
        """Additive increase, once the last cut is recover_after seconds old."""
        if self.rate < self.max_rate and self._now() - self._last_cut > self.recover_after:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 20)


def backoff(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt))."""
    return (rng or random).uniform(0, min(cap, base * (2**attempt)))
