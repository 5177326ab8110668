"""The run's memory: every state change goes to the journal and, applied, to the entries the
plan was made from, so the executor and delivery read what they wrote.

Durable records are group-committed: each is appended (and flushed) at once, in order, then
waits until an fsync covers its line. One fsync runs at a time, off the event loop; records
that arrive while it runs share the next one. Nothing returns before its own line is on disk,
so the crash model is unchanged (an intent is durable before its create is sent, a `created`
before the run goes on), only the fsyncs are fewer."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread

from ..state.journal import Entries, Journal, apply


class Recorder:
    """A journal and the entries it keeps current; shared by the executor and delivery."""

    def __init__(self, journal: Journal, entries: Entries) -> None:
        self.journal, self.entries = journal, entries
        self.durable = 0
        """Lines of the journal known to be fsynced."""
        self.fsyncs = 0
        self._syncing: anyio.Event | None = None
        """Set when the fsync in flight ends; None when none is."""

    def record(self, rec: dict[str, Any], *, durable: bool = False) -> None:
        """Append rec (fsynced if durable) and apply it to the entries."""
        self.journal.append(rec, durable=durable)
        apply(self.entries, rec)

    async def record_durably(self, rec: dict[str, Any]) -> None:
        """Append rec, return once an fsync covers it (off the event loop), then apply it."""
        await self.sync_through(self.journal.append(rec))
        apply(self.entries, rec)

    async def sync(self) -> None:
        """Return once everything recorded so far is durable (a webhook's 200 waits for it)."""
        await self.sync_through(self.journal.written)

    async def sync_through(self, line: int) -> None:
        """Return once the journal's first `line` lines are durable. The first waiter runs the
        fsync; the others wait for it, and if it did not cover them one of them runs the next."""
        while self.durable < line:
            if self._syncing is not None:
                await self._syncing.wait()
                continue
            self._syncing = done = anyio.Event()
            try:
                self.durable = max(self.durable, await anyio.to_thread.run_sync(self.journal.sync))
                self.fsyncs += 1
            finally:
                self._syncing = None
                done.set()
