"""The run façade: the CLI hands RunSession a campaign and its plan; the session builds the
HTTP session, the provider, the limiters, the recorder, delivery and the executor, and closes the
journal whatever happens. Stopping is its event: stop() lets no further create start (in-flight
jobs still finish). Compaction into the lockfile is the caller's `finally` (it must run on
Ctrl-C)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import aiohttp
import anyio

from ..model import Event, ImageRef, JobSpec, PlanItem, RunStats
from ..spec.campaign import Campaign
from ..state.journal import Entries, Journal, journal_path
from . import retry
from .delivery import Delivery, Requery
from .download import Policy, is_local_host
from .executor import Executor
from .memory import steady_malloc
from .pacing import Lane, RateLimiter, lanes
from .providers.akool import AkoolProvider, Auth, auth_from_env
from .providers.base import CreateRequest, Provider
from .recorder import Recorder
from .sharing import StoreLink
from .store import Store
from .trust import check_credentials_may_go

if TYPE_CHECKING:  # the receiver (aiohttp.web, AES) loads only for a run that listens
    from .webhook_receiver import Listening, WebhookSetup


def image_url_for(campaign: Campaign, *, emulator: bool) -> Callable[[ImageRef], str]:
    """How images reach the API: URLs as they are; local files as file:// for the emulator, or
    under provider.image_base_url for a real endpoint."""
    base = campaign.provider.image_base_url
    known: dict[ImageRef, str] = {}  # many jobs share an image: spell its URL once

    def spelled(ref: ImageRef) -> str:
        if ref.kind == "url":
            return ref.value
        if emulator or base == "file://":
            return Path(ref.value).as_uri()
        assert base is not None
        return base.rstrip("/") + "/" + quote(ref.display.lstrip("./"))

    def url(ref: ImageRef) -> str:
        got = known.get(ref)
        if got is None:
            got = known[ref] = spelled(ref)
        return got

    return url


def download_policy(campaign: Campaign, base_url: str, *, emulator: bool) -> Policy:
    """The manifest's download settings; result URLs may be local only if the endpoint is."""
    limits = campaign.limits
    return Policy(
        verify=campaign.verify,
        max_bytes=limits.max_download_bytes,
        stall=limits.download_stall_timeout,
        deadline=limits.download_timeout,
        connect=limits.request_timeout,
        allow_local=emulator or is_local_host(urlsplit(base_url).hostname or ""),
    )


def credentials(campaign: Campaign, env: Mapping[str, str] | None = None) -> Auth:
    """The campaign's AKOOL credentials from env (default: the process environment), for its
    real endpoint; ConfigError when that endpoint may not receive them (see trust.py)."""
    p, env = campaign.provider, os.environ if env is None else env
    auth = auth_from_env(env, p.api_key_env, p.client_id_env, p.client_secret_env)
    check_credentials_may_go(p.endpoint, env, auth.source)
    return auth


def requery_with(provider: Provider, limiter: RateLimiter | Lane) -> Requery:
    """Delivery's way to a fresh result URL: one paced, retried results query."""

    async def requery(rid: str) -> str | None:
        fresh = await retry.call(lambda: provider.results([rid]), limiter)
        return next((r.video_url for r in fresh if r.video_url), None)

    return requery


class RunSession:
    """One `i2v run` against one endpoint: give it the campaign and the plan's state (entries,
    output prefix), then `await run(items)`; `stop()` may come from a signal handler at any time.

    Everything the layers below need is built here from the campaign, so nothing rides through
    a layer that does not use it."""

    def __init__(
        self,
        campaign: Campaign,
        entries: Entries,
        *,
        prefix: str,
        base_url: str,
        auth: Auth | None,
        on_event: Callable[[Event], None] = lambda e: None,
        max_credits: int | None = None,
        webhook: WebhookSetup | None = None,
    ) -> None:
        """webhook: listen for AKOOL's webhooks during the run (`--webhook-listen`)."""
        self.campaign, self.entries, self.prefix = campaign, entries, prefix
        self.webhook = webhook
        self.base_url, self.auth = base_url, auth
        self.on_event, self.max_credits = on_event, max_credits
        self._stopped = False
        self._stop: anyio.Event | None = None
        """Made in run(): an anyio Event belongs to the event loop that runs it."""
        self._executor: Executor | None = None

    def stop(self) -> None:
        """Start no further create; jobs in flight are still polled and downloaded. Safe before
        run() (nothing is then created) and from a signal handler's task."""
        self._stopped = True
        if self._stop is not None:
            self._stop.set()

    @property
    def stopped(self) -> bool:
        """True once stop() was called."""
        return self._stopped

    @property
    def stats(self) -> RunStats:
        """What the run did so far (also after it was cancelled half-way)."""
        return self._executor.stats if self._executor is not None else RunStats()

    async def run(self, items: Sequence[PlanItem]) -> RunStats:
        """Execute items (the plan's work) to the end, or until stopped or cancelled."""
        limits = self.campaign.limits
        steady_malloc()  # before the worker threads start: a long run's memory stays flat
        self._stop = anyio.Event()
        if self._stopped:
            self._stop.set()
        journal = Journal(journal_path(self.campaign.lock_path))
        connector = aiohttp.TCPConnector(limit=max(16, limits.downloads * 2 + 8))
        try:
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                self._listening() as hook,
            ):
                provider = AkoolProvider(
                    session, self.base_url, self.auth, timeout=limits.request_timeout
                )
                recorder = Recorder(journal, self.entries)
                url = hook.url if hook else self.campaign.provider.webhook_url
                link = self._store_link(recorder)
                self._executor = self._executor_for(session, provider, recorder, url, link)
                if hook is not None:
                    from .webhook_receiver import sink_for

                    hook.receiver.sink = sink_for(self._executor, recorder)
                    self._executor.schedule.expect_webhooks(limits.webhook_poll_interval)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(recorder.keep_durable)
                    try:
                        if link is None:
                            stats = await self._executor.run(items)
                        else:
                            stats = await self._run_sharing(self._executor, link, items)
                    finally:
                        tg.cancel_scope.cancel()  # journal.close() fsyncs what is left
                return stats
        finally:
            journal.close()

    @asynccontextmanager
    async def _listening(self) -> AsyncIterator[Listening | None]:
        """The webhook receiver for the run's duration, if one was asked for."""
        setup = self.webhook
        if setup is None:
            yield None
            return
        from .webhook_receiver import WebhookReceiver, listening

        receiver = WebhookReceiver(setup.keys, max_age=self.campaign.limits.webhook_max_age)
        async with listening(receiver, setup.host, setup.port, setup.public_url) as hook:
            yield hook

    def _store_link(self, recorder: Recorder) -> StoreLink | None:
        """The manifest's store as this run uses it (None without one)."""
        settings = self.campaign.store
        if settings is None:
            return None
        return StoreLink(
            Store.from_settings(settings),
            base_dir=self.campaign.manifest.base_dir,
            entries=recorder.entries,
            record=recorder.record,
            emit=self.on_event,
            manifest=str(self.campaign.manifest.path),
        )

    @staticmethod
    async def _run_sharing(
        executor: Executor, link: StoreLink, items: Sequence[PlanItem]
    ) -> RunStats:
        """The executor's run, with the uploads of what it lands going on beside it; the last
        uploads finish after it (a cancelled run abandons them: `i2v push` does them later)."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(link.serve)
                try:
                    await executor.run(items)
                finally:
                    link.close()
        finally:  # an interrupted run says what it did upload too
            executor.stats.stored, executor.stats.uploaded = link.stored, link.uploaded
        return executor.stats

    def _executor_for(
        self,
        session: aiohttp.ClientSession,
        provider: Provider,
        recorder: Recorder,
        webhook: str | None,
        link: StoreLink | None = None,
    ) -> Executor:
        """The executor and its delivery, sharing the recorder and the request limiter."""
        assert self._stop is not None
        campaign, limits = self.campaign, self.campaign.limits
        emulator = campaign.provider.is_emulator
        create_lane, request_lane = lanes(
            limits.create_rps, limits.request_rps, limits.shared_budget, None, None
        )
        delivery = Delivery(
            session=session,
            base_dir=campaign.manifest.base_dir,
            prefix=self.prefix,
            entries=recorder.entries,
            record=recorder.record,
            requery=requery_with(provider, request_lane),
            concurrent=limits.downloads,
            policy=download_policy(campaign, self.base_url, emulator=emulator),
            store=link,
        )
        to_url = image_url_for(campaign, emulator=emulator)

        def request_for(spec: JobSpec) -> CreateRequest:
            return CreateRequest.for_job(spec, to_url, webhook)

        return Executor(
            provider=provider,
            recorder=recorder,
            delivery=delivery,
            limits=limits,
            request_for=request_for,
            on_event=self.on_event,
            max_credits=self.max_credits,
            create_limiter=create_lane,
            request_limiter=request_lane,
            stop=self._stop,
        )
