"""The run's memory: every state change goes to the journal and, applied, to the entries the
plan was made from, so the executor and delivery read what they wrote.

Every record is appended and flushed to the OS at once, in order: a killed process loses none.
What must be on disk before the run goes on (an intent, before its create is sent) is
group-committed: it waits until an fsync covers its line; one fsync runs at a time (inline while
fsyncs are quick, else off the event loop: run/offload.py), and records that arrive while it
runs share the next one. Everything else (a
create's `created`, statuses, downloads) rides the next of those fsyncs, and `keep_durable`
fsyncs what is left within `DURABLE_WITHIN` seconds: only a power cut inside that window can
lose such a line, and a lost `created` leaves its durable intent, an unknown, never a resend."""

from __future__ import annotations

from typing import Any

import anyio

from ..state.journal import Entries, Journal, apply
from . import offload

DURABLE_WITHIN = 1.0
"""Seconds within which a record that was not waited for is fsynced (see keep_durable)."""


class Recorder:
    """A journal and the entries it keeps current; shared by the executor and delivery."""

    def __init__(self, journal: Journal, entries: Entries) -> None:
        self.journal, self.entries = journal, entries
        self.durable = 0
        """Lines of the journal known to be fsynced."""
        self.fsyncs = 0
        self._fsync_lane = offload.Lane("journal fsync")
        """Where fsyncs run: inline while they are quick, else in a thread."""
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

    async def keep_durable(self, within: float = DURABLE_WITHIN) -> None:
        """Until cancelled: fsync, every `within` seconds, what was recorded without waiting
        for its fsync (most lines are covered sooner, by the next intent's)."""
        while True:
            await anyio.sleep(within)
            if self.durable < self.journal.written:
                await self.sync()

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
                self.durable = max(self.durable, await self._fsync_lane.run(self.journal.sync))
                self.fsyncs += 1
            finally:
                self._syncing = None
                done.set()
