"""Request pacing: a rate limiter with no initial burst that learns an account's limit.

It is a virtual-scheduling limiter (GCRA with a burst of one): each caller reserves the next free
slot, `1/rate` after the previous one, and sleeps until it. Unlike a full token bucket it never
lets a burst through at start, which is exactly what an API that throttles per second punishes.

On throttling it does not halve (a configured rate near the real limit would then run at half of
it, oscillating under it): the first throttle of an episode backs off by a small factor, and once
throttles keep coming it measures the rate the server accepted between them (a throttling
server's bucket is empty at both ends, so that rate is its limit, or this client's share of it
when shards share the account) and settles at 95 % of it. Quiet periods then add a step that
doubles while it stays quiet (additive increase: every client of one account climbs by the same
amounts, so shards converge to equal shares; the doubling reclaims capacity a finished shard
freed in seconds), capped by the learned limit while it is recent and never above the configured
rate. Retry-After is honoured. The clock and sleep are injected so tests move a fake clock.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

Now = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SETTLE = 0.95
"""Fraction of a measured accepted rate to run at: just under it, so throttles stay rare."""
BACKOFF = 0.95
"""The first throttle of an episode: a small step down (the rate may be the limit itself)."""
MAX_CUT = 0.25
"""A measurement never cuts the rate below this fraction of it: a client starved for a moment
by others sharing the account measures almost nothing, and must not collapse on it."""
MEASURE_MIN = 0.5
"""Seconds of throttled traffic needed before the accepted rate is trusted as the limit."""
MEASURE_SLOTS = 10
"""...and at least this many slots of it: a slow client's half second holds too few requests."""
EPISODE = 5.0
"""Throttles further apart than this start a new episode."""
STEP = 0.02
"""The first additive increase after a quiet period, as a share of the configured rate."""
QUIET = 1.0
"""Seconds without a throttle (or a change) between two increases."""
FORGET = 5.0
"""Seconds without a throttle after which a learned limit no longer caps the increase: capacity
another client (a shard) freed is claimed within seconds."""


class RateLimiter:
    """AIMD on throttle answers, with the limit learned: a throttle cuts the rate (to just under
    the accepted rate once measured: multiplicative, as each client of a shared account measures
    its share), quiet periods add to it (the same step for every client, so shards of one
    account converge to equal shares), and the step doubles while it stays quiet, so a shard
    whose neighbours finished climbs back in seconds. A single client settles just under its
    limit: the learned limit caps the increase while it is recent."""

    def __init__(
        self,
        rate: float,
        *,
        min_rate: float | None = None,
        recover_after: float = QUIET,
        now: Now | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = rate
        self.rate = rate
        self.min_rate = min_rate if min_rate is not None else rate / 16
        self.recover_after = recover_after
        self._now = now or time.monotonic  # the asyncio loop's clock
        self._sleep = sleep or anyio.sleep
        self._next: float | None = None
        self._hold = float("-inf")
        """No slot before this: the end of the last Retry-After."""
        self._epoch = 0
        """Bumped on every rate change: slots reserved under an older one are stale."""
        self._last_change = float("-inf")
        self._step = STEP * rate
        self._anchor: float | None = None
        """When the current throttle episode's measurement started."""
        self._last_throttle = float("-inf")
        self._accepted: deque[float] = deque()
        """Times of successes since the anchor (bounded by the episode)."""
        self.learned: float | None = None
        self.throttles = 0

    async def acquire(self) -> None:
        """Wait for this caller's slot. Cancelling a waiter leaves a gap; it never bursts. A
        slot reserved before the rate changed is taken again at the new rate: thousands of
        waiters would otherwise keep the old spacing for seconds after a throttle."""
        while True:
            epoch = self._epoch
            now = self._now()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + 1.0 / self.rate
            if slot <= now:
                return
            await self._sleep(slot - now)
            if self._epoch == epoch:
                return

    def idle(self, within: float = 0.0) -> bool:
        """True when a caller would get a slot within `within` seconds: no backlog of callers,
        so the rate is not what holds work back."""
        return self._next is None or self._next <= self._now() + within

    def throttled(self, retry_after: float | None = None) -> None:
        """Cut the rate (multiplicative decrease) and learn the limit from the accepted rate;
        no slot before Retry-After has passed."""
        now = self._now()
        self.throttles += 1
        self._step = STEP * self.max_rate
        if now - self._last_throttle > EPISODE or self._anchor is None:
            self._anchor = now  # a new episode: step down a little, start measuring
            self._accepted.clear()
            rate = self.rate * BACKOFF
            if self.learned is not None:  # back under the limit measured before, at once
                rate = min(rate, max(self.learned * SETTLE, self.rate * MAX_CUT))
            self._set(rate, now)
        elif now - self._anchor >= max(MEASURE_MIN, MEASURE_SLOTS / self.rate):
            accepted = len(self._accepted) / (now - self._anchor)
            self.learned = accepted
            self._set(min(self.rate, max(accepted * SETTLE, self.rate * MAX_CUT)), now)
            self._anchor = now
            self._accepted.clear()
        self._last_throttle = now
        if retry_after:
            self._hold = max(self._hold, now + retry_after)
            self._next = max(self._next or now, self._hold)

    def _set(self, rate: float, now: float) -> None:
        """A new rate, and a new schedule: waiters holding slots at the old rate take new ones."""
        self.rate = max(self.min_rate, rate)
        self._last_change = now
        self._epoch += 1
        if self._next is not None:  # never before a Retry-After still running
            self._next = max(min(self._next, now + 1.0 / self.rate), self._hold)

    def succeeded(self) -> None:
        """Count the success for the measurement; add a step per quiet period (additive
        increase). Below the learned limit the step doubles while it stays quiet; at it, the
        probe stays one small step per period, since past the limit it only earns throttles."""
        now = self._now()
        if now - self._last_throttle <= EPISODE:
            self._accepted.append(now)
        if self.rate >= self.max_rate or now - self._last_change <= self.recover_after:
            return
        limit = self.learned if now - self._last_throttle < FORGET else None
        if limit is not None and self.rate >= limit:
            self._set(min(self.max_rate, self.rate + STEP * self.max_rate), now)
            return
        rate = self.rate + self._step
        self._set(min(self.max_rate, rate if limit is None else min(rate, limit)), now)
        self._step *= 2


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
