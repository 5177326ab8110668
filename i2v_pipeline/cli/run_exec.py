"""The part of `i2v run` that talks to the API: the endpoint (embedded emulator or URL), signal
handling for Ctrl-C, and the executor. Imported only when a plan has work."""

from __future__ import annotations

import signal
from typing import Any

import anyio

from ..model import RunStats
from ..run.executor import Executor
from ..run.session import credentials, execute
from .common import Planned
from .embedded import endpoint_for
from .progress import Progress


def execute_plan(
    planned: Planned, work: list[Any], progress: Progress, max_credits: int | None
) -> tuple[RunStats, bool]:
    """Run the work; (stats, interrupted). Ctrl-C or SIGTERM stops submitting and returns."""
    return anyio.run(_run, planned, work, progress, max_credits)


async def _run(
    planned: Planned, work: list[Any], progress: Progress, max_credits: int | None
) -> tuple[RunStats, bool]:
    campaign = planned.campaign
    holder: dict[str, Executor] = {}
    interrupted = False
    async with (
        endpoint_for(campaign, lambda: credentials(campaign)) as (base_url, auth),
        anyio.create_task_group() as tg,
    ):

        async def watch_signals() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted = True
                    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C: now
                    if "ex" in holder:
                        holder["ex"].stop_submitting = True
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch_signals)
        stats = await execute(
            campaign,
            planned.entries,
            work,
            base_url=base_url,
            auth=auth,
            prefix=planned.prefix,
            emulator=campaign.provider.is_emulator,
            on_event=progress,
            max_credits=max_credits,
            started=lambda ex: holder.__setitem__("ex", ex),
        )
        tg.cancel_scope.cancel()
    return (holder["ex"].stats if "ex" in holder else stats), interrupted
