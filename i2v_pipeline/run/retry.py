"""Retrying a provider call: the caller states the policy; errors.py's classes say what is
retryable. Only TransientError (and its ThrottledError) is retried; UnknownOutcomeError never is,
so a create that may have reached the server is never sent twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from ..errors import ThrottledError, TransientError
from .pacing import Sleep, backoff

T = TypeVar("T")


class Pacer(Protocol):
    """What retry.call needs of a limiter (a RateLimiter, or a Lane on a shared budget)."""

    async def acquire(self) -> None: ...
    def throttled(self, retry_after: float | None = None) -> None: ...
    def succeeded(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0


async def call(
    fn: Callable[[], Awaitable[T]],
    limiter: Pacer,
    policy: RetryPolicy = RetryPolicy(),
    on_retry: Callable[[TransientError, float], None] | None = None,
    sleep: Sleep | None = None,
    paced: bool = False,
) -> T:
    """Pace with limiter, call fn, retry transient failures with full-jitter backoff; a throttle
    also slows the limiter and honours Retry-After. fn runs after every wait: what must be on
    disk just before a request leaves (a create's intent) is written inside fn. paced: the
    caller already took the first attempt's slot."""
    for attempt in range(policy.attempts):
        if attempt or not paced:
            await limiter.acquire()
        try:
            result = await fn()
        except ThrottledError as exc:
            limiter.throttled(exc.retry_after)
            if attempt + 1 >= policy.attempts:
                raise
            delay = max(exc.retry_after or 0.0, backoff(attempt, base=policy.base, cap=policy.cap))
        except TransientError as exc:
            if attempt + 1 >= policy.attempts:
                raise
            delay = backoff(attempt, base=policy.base, cap=policy.cap)
            if on_retry:
                on_retry(exc, delay)
        else:
            limiter.succeeded()
            return result
        await (sleep or anyio.sleep)(delay)
    raise AssertionError("unreachable")  # pragma: no cover
