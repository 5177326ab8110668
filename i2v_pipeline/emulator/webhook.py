"""Webhook delivery as AKOOL does it (akool-api.md §10): an encrypted, signed POST on each status
change to the job's webhookurl, retried until the receiver answers HTTP 200."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp

from ..akool_codes import STATUS_SUCCEEDED
from ..webhook_crypto import seal
from .account import Job, State

TICK = 0.05


class WebhookSender:
    """Posts status changes to a job's webhookurl, encrypted and signed like AKOOL."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.delivered: list[dict[str, Any]] = []
        """Plain payloads that got an HTTP 200, for tests."""
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Apply due status changes and send their webhooks, forever (until cancelled)."""
        while True:
            self.state.advance()
            events, self.state.events = self.state.events, []
            for job, status in events:
                url = job.fields.get("webhookUrl")
                if url:
                    task = asyncio.ensure_future(self._deliver(job, status, str(url)))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
            await asyncio.sleep(TICK)

    def payload(self, job: Job, status: int) -> dict[str, Any]:
        """The plain payload for a status change (the URL only when done)."""
        out: dict[str, Any] = {"_id": job.id, "status": status, "type": "image2video"}
        if status == STATUS_SUCCEEDED:
            out["url"] = f"{self.state.base_url}/_emulator/videos/{job.id}.mp4"
        return out

    async def _deliver(self, job: Job, status: int, url: str) -> None:
        cfg = self.state.config
        plain = self.payload(job, status)
        body = seal(
            plain,
            cfg.client_id,
            cfg.client_secret,
            self.state.now_ms(),
            str(secrets.randbelow(10_000)),
        )
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for _ in range(cfg.webhook_attempts):
            try:
                async with self._session.post(url, json=body) as r:
                    if r.status == 200:
                        self.delivered.append(plain)
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(cfg.webhook_retry)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
