"""Progress on stderr: a rich live panel on a terminal, plain lines otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from types import TracebackType

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..model import Event, EventKind
from .logs import color_enabled

LOUD = {EventKind.FAILED, EventKind.UNKNOWN, EventKind.FATAL, EventKind.SKIPPED, EventKind.NOTICE}


class Eta:
    """Time left, from the run's observed pace, moving smoothly.

    Each finished job re-estimates from the mean time per finished job so far, blended with the
    running estimate so one fast or slow job does not make it jump; between finishes it counts
    down with the clock instead of standing still (or creeping up, as elapsed/finished does)."""

    BLEND = 0.5
    """Weight of the fresh estimate against the running one at each finish."""

    def __init__(self, total: int, now: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.now = now
        self.started = now()
        self.finished_jobs = 0
        self.estimate: float | None = None
        self.at = self.started

    def finished(self) -> None:
        """One more job ended (done or failed)."""
        self.finished_jobs += 1
        t = self.now()
        left = self.total - self.finished_jobs
        fresh = (t - self.started) / self.finished_jobs * max(left, 0)
        running = self.left(t)
        self.estimate = (
            fresh
            if running is None or left <= 0
            else (self.BLEND * fresh + (1 - self.BLEND) * running)
        )
        self.at = t

    def left(self, t: float | None = None) -> float | None:
        """Seconds left, or None before the first job ends."""
        if self.estimate is None:
            return None
        return max(self.estimate - ((self.now() if t is None else t) - self.at), 0.0)

    def text(self) -> str:
        """`-` until a job ends, then `45s`, `3m05s`, `1h02m`."""
        left = self.left()
        if left is None or self.finished_jobs >= self.total:
            return "-"
        s = round(left)
        if s < 60:
            return f"{s}s"
        if s < 3600:
            return f"{s // 60}m{s % 60:02d}s"
        return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """The run's event sink: counts, credits and problems, shown live or as lines."""

    def __init__(
        self, total_work: int, *, quiet: bool = False, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = total_work
        self.counts: Counter[EventKind] = Counter()
        self.credits = 0
        self.clock = Eta(total_work, now)
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
        self.console = Console(stderr=True, color_system="auto" if color_enabled() else None)
        self._live: Live | None = None
        self.problems: list[dict[str, str]] = []
        """Failed, unknown, skipped and fatal events, for the JSON summary."""

    def __enter__(self) -> Progress:
        if self.tty:
            # get_renderable: each refresh re-renders, so the ETA counts down between events
            self._live = Live(
                console=self.console,
                refresh_per_second=4,
                transient=True,
                get_renderable=self._render,
            )
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(et, e, tb)

    def eta(self) -> str:
        """Time left (see Eta)."""
        return self.clock.text()

    def _render(self) -> Text:
        c = self.counts
        return Text(
            f"jobs {c[EventKind.DONE]}/{self.total} done · {c[EventKind.SUBMITTED]} submitted · "
            f"{c[EventKind.FAILED]} failed · {c[EventKind.UNKNOWN]} unknown · "
            f"{self.credits} credits · ETA {self.eta()}"
        )

    def __call__(self, event: Event) -> None:
        self.counts[event.kind] += 1
        if event.kind in (EventKind.DONE, EventKind.FAILED):
            self.clock.finished()
        if event.kind in LOUD:
            self.problems.append(
                {"id": event.job_id, "event": event.kind.value, "detail": event.detail}
            )
        self.credits += event.credits
        if self._live is not None:  # it re-renders by itself (get_renderable), 4 times a second
            if event.kind in LOUD:
                self.console.print(f"[red]{event.kind.value}[/] {event.job_id} {event.detail}")
        elif not self.quiet and (
            event.kind in LOUD or event.kind in (EventKind.DONE, EventKind.SUBMITTED)
        ):
            click.echo(f"{event.kind.value:>9} {event.job_id} {event.detail}".rstrip(), err=True)
