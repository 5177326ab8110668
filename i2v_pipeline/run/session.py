"""One run, start to end: a session and a provider around the executor, and the journal closed
whatever happens. Compaction into the lockfile is the caller's `finally` (it must run on Ctrl-C).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp

from ..model import Event, ImageRef, JobSpec, PlanItem, RunStats
from ..spec.campaign import Campaign
from ..state.journal import Entries, Journal, journal_path
from .download import Policy, is_local_host
from .executor import Executor, build_request
from .providers.akool import AkoolProvider, Auth, auth_from_env


def image_url_for(campaign: Campaign, *, emulator: bool) -> Callable[[ImageRef], str]:
    """How images reach the API: URLs as they are; local files as file:// for the emulator, or
    under provider.image_base_url for a real endpoint."""
    base = campaign.provider.image_base_url

    def url(ref: ImageRef) -> str:
        if ref.kind == "url":
            return ref.value
        if emulator or base == "file://":
            return Path(ref.value).as_uri()
        assert base is not None
        return base.rstrip("/") + "/" + quote(ref.display.lstrip("./"))

    return url


def download_policy(campaign: Campaign, base_url: str, *, emulator: bool) -> Policy:
    """The manifest's download settings; result URLs may be local only if the endpoint is."""
    limits = campaign.limits
    return Policy(
        verify=campaign.verify,
        max_bytes=limits.max_download_bytes,
        stall=limits.download_stall_timeout,
        connect=limits.request_timeout,
        allow_local=emulator or is_local_host(urlsplit(base_url).hostname or ""),
    )


def credentials(campaign: Campaign, env: Mapping[str, str] | None = None) -> Auth:
    p = campaign.provider
    return auth_from_env(
        os.environ if env is None else env, p.api_key_env, p.client_id_env, p.client_secret_env
    )


async def execute(
    campaign: Campaign,
    entries: Entries,
    items: Sequence[PlanItem],
    *,
    base_url: str,
    auth: Auth,
    prefix: str,
    emulator: bool,
    on_event: Callable[[Event], None],
    max_credits: int | None,
    started: Callable[[Executor], None] = lambda ex: None,
) -> RunStats:
    limits = campaign.limits
    journal = Journal(journal_path(campaign.lock_path))
    to_url = image_url_for(campaign, emulator=emulator)
    webhook = campaign.provider.webhook_url

    def request_for(spec: JobSpec) -> dict[str, object]:
        return build_request(spec, to_url, webhook)

    connector = aiohttp.TCPConnector(limit=max(16, limits.downloads * 2 + 8))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            provider = AkoolProvider(session, base_url, auth, timeout=limits.request_timeout)
            ex = Executor(
                provider=provider,
                session=session,
                entries=entries,
                journal=journal,
                limits=limits,
                base_dir=campaign.manifest.base_dir,
                prefix=prefix,
                request_for=request_for,
                on_event=on_event,
                max_credits=max_credits,
                download_policy=download_policy(campaign, base_url, emulator=emulator),
            )
            started(ex)
            return await ex.run(items)
    finally:
        journal.close()
