"""Progress on stderr: a rich live panel on a terminal, plain lines otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from types import TracebackType

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..model import Event, EventKind
from .logs import color_enabled

LOUD = {EventKind.FAILED, EventKind.UNKNOWN, EventKind.FATAL, EventKind.SKIPPED, EventKind.NOTICE}


class Progress:
    """The run's event sink: counts, credits and problems, shown live or as lines."""

    def __init__(self, total_work: int, *, quiet: bool = False) -> None:
        self.total = total_work
        self.counts: Counter[EventKind] = Counter()
        self.credits = 0
        self.started = time.monotonic()
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
        self.console = Console(stderr=True, color_system="auto" if color_enabled() else None)
        self._live: Live | None = None
        self.problems: list[dict[str, str]] = []
        """Failed, unknown, skipped and fatal events, for the JSON summary."""

    def __enter__(self) -> Progress:
        if self.tty:
            self._live = Live(
                self._render(), console=self.console, refresh_per_second=4, transient=True
            )
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(et, e, tb)

    def eta(self) -> str:
        """Time left, from the mean time per finished job so far."""
        finished = self.counts[EventKind.DONE] + self.counts[EventKind.FAILED]
        if not finished or finished >= self.total:
            return "-"
        per = (time.monotonic() - self.started) / finished
        return f"{per * (self.total - finished):.0f}s"

    def _render(self) -> Text:
        c = self.counts
        return Text(
            f"jobs {c[EventKind.DONE]}/{self.total} done · {c[EventKind.SUBMITTED]} submitted · "
            f"{c[EventKind.FAILED]} failed · {c[EventKind.UNKNOWN]} unknown · "
            f"{self.credits} credits · ETA {self.eta()}"
        )

    def __call__(self, event: Event) -> None:
        self.counts[event.kind] += 1
        if event.kind in LOUD:
            self.problems.append(
                {"id": event.job_id, "event": event.kind.value, "detail": event.detail}
            )
        self.credits += event.credits
        if self._live is not None:
            self._live.update(self._render())
            if event.kind in LOUD:
                self.console.print(f"[red]{event.kind.value}[/] {event.job_id} {event.detail}")
        elif not self.quiet and (
            event.kind in LOUD or event.kind in (EventKind.DONE, EventKind.SUBMITTED)
        ):
            click.echo(f"{event.kind.value:>9} {event.job_id} {event.detail}".rstrip(), err=True)
