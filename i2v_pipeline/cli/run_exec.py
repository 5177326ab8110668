"""The part of `i2v run` that talks to the API: the endpoint (embedded emulator or URL), signal
handling for Ctrl-C, and the run session. Imported only when a plan has work."""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from ..errors import I2VError
from ..model import PlanItem, RunStats
from ..perf import frozen_heap
from ..run.session import RunSession, credentials
from .common import Planned
from .embedded import endpoint_for
from .progress import Progress

if TYPE_CHECKING:  # the receiver (aiohttp.web, AES) loads only for a run that listens
    from ..run.webhook_receiver import WebhookSetup


def execute_plan(
    planned: Planned,
    work: Sequence[PlanItem],
    progress: Progress,
    max_credits: int | None,
    webhook: WebhookSetup | None = None,
) -> tuple[RunStats, bool]:
    """Run the work; (stats, interrupted). Ctrl-C or SIGTERM stops submitting and returns.
    webhook: take AKOOL's webhooks during the run (`--webhook-listen`)."""
    made: list[RunSession] = []
    try:
        with frozen_heap():
            interrupted = anyio.run(
                _run,
                planned,
                work,
                progress,
                max_credits,
                webhook,
                made,
                backend_options=loop_options(),
            )
    except KeyboardInterrupt:  # Ctrl-C before the signal watcher was up, or once it was down
        interrupted = True
    except BaseExceptionGroup as group:  # the task group wraps a user error (a port in use)
        if group.split(KeyboardInterrupt)[1] is not None:  # not only a Ctrl-C, as above
            raise sole_user_error(group) from None
        interrupted = True
    return (made[0].stats if made else RunStats()), interrupted


def loop_options() -> dict[str, bool]:
    """anyio's asyncio options for a run: uvloop where it is installed (a dependency on Linux
    and macOS), whose event loop costs a run's many small requests and callbacks far less CPU
    than the standard library's; I2V_UVLOOP=0 keeps the standard loop."""
    if os.environ.get("I2V_UVLOOP", "1") == "0" or importlib.util.find_spec("uvloop") is None:
        return {}
    return {"use_uvloop": True}


def sole_user_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one I2VError a task group's exception group holds (raised as such: exit 2 and its
    message, not a traceback), else the group itself."""
    while len(group.exceptions) == 1 and isinstance(group.exceptions[0], BaseExceptionGroup):
        group = group.exceptions[0]
    only = group.exceptions[0] if len(group.exceptions) == 1 else None
    return only if isinstance(only, I2VError) else group


async def _run(
    planned: Planned,
    work: Sequence[PlanItem],
    progress: Progress,
    max_credits: int | None,
    webhook: WebhookSetup | None,
    made: list[RunSession],
) -> bool:
    """execute_plan's run, into the session it puts in made; True if a signal stopped it."""
    campaign = planned.campaign
    interrupted = False

    async def watch_signals(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                break
        # out of the receiver, which put Python's handler back (a second Ctrl-C would raise
        # in whatever runs then, a thread of the loop's shutdown included): now it ends at once
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        interrupted = True
        for run in made:
            run.stop()
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        await tg.start(watch_signals)  # before the endpoint starts: Ctrl-C there is a stop too
        async with endpoint_for(campaign, lambda: credentials(campaign)) as (base_url, auth):
            run = RunSession(
                campaign,
                planned.entries,
                prefix=planned.prefix,
                base_url=base_url,
                auth=auth,
                on_event=progress,
                max_credits=max_credits,
                webhook=webhook,
            )
            made.append(run)
            await run.run(work)
        tg.cancel_scope.cancel()
    return interrupted
