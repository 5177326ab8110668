"""Where a run sends its requests: the embedded emulator (started here, in-process, on a loopback
port) or a real URL with credentials from the environment. The only runner-side user of the
emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..run.providers.akool import AkoolProvider, ApiKeyAuth, Auth
from ..spec.campaign import Campaign
from .logs import warn

if TYPE_CHECKING:  # imported where used: a run on a real endpoint never loads the emulator
    from ..emulator import EmulatorConfig


def embedded_config() -> EmulatorConfig:
    """The quickstart's emulator: quick jobs, and state kept between runs (like a real account)."""
    from ..emulator import EmulatorConfig
    from ..emulator.media import default_cache_dir

    cache = default_cache_dir().parent
    return EmulatorConfig(
        queue_time=0.3, processing_time=1.5, state_file=cache / "emulator-state.json"
    )


@asynccontextmanager
async def provider_for(campaign: Campaign) -> AsyncIterator[AkoolProvider]:
    """A provider for one-off calls (models, effects, status, prune) on the campaign's endpoint,
    credentials from the environment."""
    import aiohttp

    from ..run.session import credentials

    async with (
        endpoint_for(campaign, lambda: credentials(campaign)) as (base_url, auth),
        aiohttp.ClientSession() as session,
    ):
        yield AkoolProvider(session, base_url, auth, timeout=campaign.limits.request_timeout)


@asynccontextmanager
async def endpoint_for(
    campaign: Campaign, auth: Callable[[], Auth]
) -> AsyncIterator[tuple[str, Auth]]:
    """(base URL, auth) for a run: the campaign's URL, or an embedded emulator for its duration."""
    if not campaign.provider.is_emulator:
        yield campaign.provider.endpoint, auth()
        return
    from ..emulator import Emulator
    from ..emulator.persist import StateBusy

    config = embedded_config()
    emu = Emulator(config)
    try:
        await emu.start()
    except StateBusy:
        # Another run's embedded emulator owns the account file: this run gets a fresh,
        # in-memory account rather than two processes journaling over each other.
        warn(
            f"{config.state_file} is in use by another run; "
            "this run's emulator keeps its jobs in memory only"
        )
        emu = Emulator(config.with_(state_file=None))
        await emu.start()
    try:
        yield emu.base_url, ApiKeyAuth(emu.config.api_key)
    finally:
        await emu.stop()
