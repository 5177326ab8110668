"""How a stopped run goes on: the command that continues it with the same jobs and caps, and
what a Ctrl-C (or SIGTERM) before anything was sent says."""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import Interrupted
from ..model import RunStats
from ..state import planfile
from .common import Selection


@dataclass(frozen=True)
class Again:
    """What continues a run: the same manifest, the same jobs, the same caps. Advice that
    dropped the selection would buy, followed, the whole campaign (a CI shard too)."""

    manifest: str
    selection: Selection
    retry_failed: bool = False
    max_credits: int | None = None
    plan_file: str | None = None

    def command(self, stats: RunStats | None = None, remaining: int | None = None) -> str:
        """`i2v run M` with the run's flags, shell-quoted, for what is left after stats (None:
        nothing was sent, so a saved plan still holds). --limit and --max-credits counted
        from the start: what is left of them (done jobs no longer count as work, spent
        credits are spent); --retry-failed only if no job failed in this run (retrying
        those is a new decision, and money)."""
        if self.plan_file is not None and stats is None:
            return shlex.join(["i2v", "run", self.manifest, "--plan", self.plan_file])
        s = self.selection
        args = ["i2v", "run", self.manifest]
        args += ["--only", s.only] if s.only else []
        args += self.narrowing()
        if s.limit is not None:
            args += ["--limit", str(s.limit if remaining is None else remaining)]
        if self.retry_failed and not (stats and stats.failed):
            args.append("--retry-failed")
        if self.max_credits is not None:
            spent = stats.credits if stats else 0
            args += ["--max-credits", str(max(0, self.max_credits - spent))]
        return shlex.join(args)

    def narrowing(self) -> list[str]:
        """--select and --shard: which jobs the run was about."""
        s = self.selection
        args: list[str] = []
        for pattern in s.patterns:
            args += ["--select", pattern]
        return args + (["--shard", s.shard] if s.shard else [])


def chosen(selection: Selection, saved: planfile.SavedPlan | None) -> Selection:
    """The selection a run was made with: its flags, or the saved plan's."""
    if saved is None:
        return selection
    chose = saved.doc.get("selection") or {}
    return Selection(
        chose.get("only"), tuple(chose.get("select") or ()), chose.get("shard"), chose.get("limit")
    )


@contextmanager
def term_is_ctrl_c() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, `kill`) taken as a Ctrl-C for the whole run: the same
    message and exit, the run lock released; once the run's loop starts it watches both."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main's
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


NOTHING_SENT = "interrupted before anything was sent: nothing was bought, the lock is as it was"


@contextmanager
def nothing_sent(again: Again) -> Iterator[None]:
    """Ctrl-C while planning, checking or asking: say that nothing was sent (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(NOTHING_SENT, hint=f"run it again: {again.command()}") from None
