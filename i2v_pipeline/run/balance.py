"""The account's credit balance (AKOOL's quota endpoint, akool-api.md §12), read once."""

from __future__ import annotations

import aiohttp

from ..spec.campaign import Campaign
from .providers.akool import AkoolProvider
from .session import credentials

TIMEOUT = 10.0
"""A balance is advice for `plan`: it must not hold the plan up for a minute."""


async def read_balance(campaign: Campaign, *, timeout: float = TIMEOUT) -> float:
    """The balance of the campaign's real endpoint's account, credentials from the environment
    (ConfigError without them; ProviderError when the API fails)."""
    auth = credentials(campaign)
    async with aiohttp.ClientSession() as session:
        wait = min(timeout, campaign.limits.request_timeout)
        provider = AkoolProvider(session, campaign.provider.endpoint, auth, timeout=wait)
        return await provider.credit()
