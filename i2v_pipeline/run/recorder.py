"""The run's memory: every state change goes to the journal and, applied, to the entries the
plan was made from, so the executor and delivery read what they wrote."""

from __future__ import annotations

from typing import Any

import anyio

from ..state.journal import Entries, Journal, apply


class Recorder:
    """A journal and the entries it keeps current; shared by the executor and delivery."""

    def __init__(self, journal: Journal, entries: Entries) -> None:
        self.journal, self.entries = journal, entries

    def record(self, rec: dict[str, Any], *, durable: bool = False) -> None:
        """Append rec (fsynced if durable) and apply it to the entries."""
        self.journal.append(rec, durable=durable)
        apply(self.entries, rec)

    async def record_durably(self, rec: dict[str, Any]) -> None:
        """Append and fsync rec off the event loop, then apply it."""
        await anyio.to_thread.run_sync(lambda: self.journal.append(rec, durable=True))
        apply(self.entries, rec)

    async def sync(self) -> None:
        """fsync what was recorded so far, off the event loop (a webhook's 200 waits for it)."""
        await anyio.to_thread.run_sync(self.journal.sync)
