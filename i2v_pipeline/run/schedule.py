"""When to poll which job: each job is due at its submit time plus the expected job time, so
polls are spent where a finish is likely instead of on every id every few seconds.

The expected time is the median of observed job times (first guess: poll_interval). A job
found finished at its first poll may have finished well before it, so its time counts at 90 %:
the estimate then drifts down until some jobs are seen unfinished at their due time, which
brackets the true time from both sides instead of ratcheting up by each poll's lateness.
"""

from __future__ import annotations

import heapq
import statistics
from collections import deque

EARLY = 0.9
"""Weight of a job time observed at the first poll (an upper bound, not a measurement)."""
RECHECK = 0.1
"""A job unfinished past its due time is asked again after this fraction of its age (or of the
estimate), between min_gap and the longest interval: a slow job costs a few polls, not one per
second."""


class PollSchedule:
    def __init__(self, first_guess: float, min_gap: float, longest: float) -> None:
        self.expected = first_guess
        self.min_gap, self.longest = min_gap, longest
        self.due: dict[str, float] = {}
        self._since: dict[str, float] = {}
        self._late: set[str] = set()
        """Jobs seen unfinished at or after their due time: their time is measured tightly."""
        self._times: deque[float] = deque(maxlen=101)
        self.webhook_wait: float | None = None
        """Set by expect_webhooks: how long a job waits for its webhook before it is polled."""
        self.nap = float("inf")
        """Longest sleep of the poll loop: short while webhooks may finish jobs between polls."""
        self._no_hook: set[str] = set()
        """Jobs created by an earlier run: their webhooks went to its URL, so they are polled
        on the normal schedule even when this run takes webhooks."""

    def expect_webhooks(self, wait: float) -> None:
        """Webhooks bring the statuses: poll a job only `wait` s (or twice the expected job
        time, if longer) after its submit or its last poll, not at its expected finish: a
        safety net for a webhook that never comes."""
        self.webhook_wait, self.nap = wait, min(0.25, wait)

    def _patience(self) -> float:
        """How long a job waits for its webhook before it is polled."""
        assert self.webhook_wait is not None
        return max(self.webhook_wait, 2 * self.expected)

    def _hooked(self, key: str) -> bool:
        """Whether key's status is expected by webhook (polls are then only a safety net)."""
        return self.webhook_wait is not None and key not in self._no_hook

    def add(self, key: str, now: float, *, at_once: bool = False, webhook: bool = True) -> None:
        """Track key from now; webhook=False: its create was an earlier run's, whose webhook
        URL this run may not receive, so it is polled as without webhooks."""
        self._since[key] = now
        if not webhook:
            self._no_hook.add(key)
        wait = self._patience() if self._hooked(key) else self.expected
        self.due[key] = now if at_once else now + wait

    def earliest(self) -> float | None:
        return min(self.due.values()) if self.due else None

    def pick(self, now: float, limit: int, size: dict[str, int]) -> tuple[list[str], bool]:
        """Up to `limit` ids' worth of jobs, the due ones first, the batch filled with the
        next-due; and whether due jobs were left for the next poll."""
        picked: list[str] = []
        n = 0
        for key, _ in heapq.nsmallest(limit, self.due.items(), key=lambda kv: kv[1]):
            if picked and n + size[key] > limit:
                break
            picked.append(key)
            n += size[key]
        chosen = set(picked)
        more_due = len(self.due) > len(picked) and any(
            d <= now for k, d in self.due.items() if k not in chosen
        )
        return picked, more_due

    def unfinished(self, key: str, now: float) -> None:
        """Polled and still running: due again soon if its time has passed, else unchanged."""
        if key in self.due and self.due[key] <= now:
            self._late.add(key)
            if self._hooked(key):
                self.due[key] = now + self._patience()
                return
            age = now - self._since.get(key, now)
            wait = max(self.min_gap, RECHECK * max(age, self.expected))
            self.due[key] = now + min(wait, max(self.longest, self.min_gap))

    def finished(self, key: str, now: float) -> None:
        since = self._since.get(key)
        if since is not None:
            took = now - since
            self._times.append(took if key in self._late else took * EARLY)
            self.expected = statistics.median(self._times)
        self.forget(key)

    def forget(self, key: str) -> None:
        self.due.pop(key, None)
        self._since.pop(key, None)
        self._late.discard(key)
        self._no_hook.discard(key)
