"""The emulator's throttle as an account rate limit: one token bucket for every API call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from i2v_pipeline.emulator import Emulator, EmulatorConfig, ManualClock

pytestmark = pytest.mark.anyio
V4 = "/api/open/v4/image2Video"
KEY = {"x-api-key": "emulator-key"}
CREATE = {
    "image_url": "https://e.com/a.png",
    "prompt": "p",
    "resolution": "720p",
    "video_length": 5,
}


async def code_of(s: aiohttp.ClientSession, e: Emulator, call: str, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else KEY
    if call == "credit":
        r = await s.get(e.base_url + "/api/open/v3/faceswap/quota/info", headers=headers)
    elif call == "token":
        secret = {"clientId": e.config.client_id, "clientSecret": e.config.client_secret}
        r = await s.post(e.base_url + "/api/open/v3/getToken", json=secret)
    else:
        path, body = {
            "create": ("/createBySourcePrompt", CREATE),
            "results": ("/resultsByIds", {"_ids": "x"}),
        }[call]
        r = await s.post(e.base_url + V4 + path, json=body, headers=headers)
    async with r:
        assert r.status == 200  # the envelope, not HTTP 429
        return (await r.json())["code"]


async def test_account_bucket_spans_every_endpoint(tmp_path: Path) -> None:
    """scope account: create, resultsByIds, credit and getToken share one R/s bucket of burst B;
    past it 1005 in an HTTP 200 envelope; it refills at R/s on the clock; throttles are counted."""
    clock = ManualClock()
    cfg = EmulatorConfig(
        cache_dir=tmp_path,
        throttle_rps=2,
        throttle_burst=3,
        throttle_scope="account",
        debug_routes=True,
    )
    async with Emulator(cfg, clock=clock) as e, aiohttp.ClientSession() as s:
        burst = [await code_of(s, e, c) for c in ("create", "results", "credit")]
        assert burst == [1000, 1000, 1000]
        assert [await code_of(s, e, c) for c in ("token", "results", "create")] == [1005] * 3
        clock.advance(0.5)  # one token back at 2/s
        assert [await code_of(s, e, "results"), await code_of(s, e, "credit")] == [1000, 1005]
        clock.advance(10)  # refills to the burst, not beyond
        assert [await code_of(s, e, "results") for _ in range(4)] == [1000, 1000, 1000, 1005]
        async with s.get(e.base_url + "/_emulator/debug/requests") as r:
            assert (await r.json())["throttled"] == 5
    assert sum(1 for rec in e.log if rec.code == 1005) == 5


async def test_key_scope_keeps_one_bucket_per_credential(tmp_path: Path) -> None:
    """scope key (the default): the API key and a bearer token have separate budgets, and
    getToken is not throttled."""
    clock = ManualClock()
    cfg = EmulatorConfig(cache_dir=tmp_path, throttle_rps=1)
    async with Emulator(cfg, clock=clock) as e, aiohttp.ClientSession() as s:
        assert [await code_of(s, e, "results") for _ in range(2)] == [1000, 1005]
        assert [await code_of(s, e, "token") for _ in range(2)] == [1000, 1000]
        token = next(iter(e.tokens))
        assert [await code_of(s, e, "results", token) for _ in range(2)] == [1000, 1005]
        assert e.throttled == 2


def test_throttle_mapping_and_bad_scope() -> None:
    """The config file's `throttle: {rps, burst, scope}` maps onto the fields; a bad scope is
    refused with the allowed values."""
    cfg = EmulatorConfig.from_mapping({"throttle": {"rps": 5, "burst": 2, "scope": "account"}})
    assert (cfg.throttle_rps, cfg.throttle_burst, cfg.throttle_scope) == (5, 2, "account")
    with pytest.raises(ValueError, match="key"):
        EmulatorConfig.from_mapping({"throttle": {"rps": 5, "scope": "team"}})
    with pytest.raises(ValueError, match="rps, burst"):
        EmulatorConfig.from_mapping({"throttle": {"rate": 5}})
