"""Which secrets a manifest may name, where they may be sent, and what auth and timeout errors
say: a manifest comes from pull requests and must not choose which secret goes where."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.errors import (
    ConfigError,
    FatalProviderError,
    ManifestError,
    TransientError,
    UnknownOutcomeError,
)
from i2v_pipeline.run.providers.akool import AkoolProvider, ApiKeyAuth, TokenAuth
from i2v_pipeline.run.providers.base import CreateRequest
from i2v_pipeline.run.session import credentials
from i2v_pipeline.run.trust import TRUST_VAR, check_credentials_may_go
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.settings import ProviderSettings

from .conftest import WriteManifest

BASE = "https://openapi.akool.com"
RESULTS = f"{BASE}/api/open/v4/image2Video/resultsByIds"
TOKEN = f"{BASE}/api/open/v3/getToken"
BATCH = f"{BASE}/api/open/v4/image2Video/createBySourcePrompt/batch"
MANIFEST = """\
version: 1
name: t
provider:
  endpoint: "{url}"
  {extra}
limits: {{max_credits: 1000, request_timeout: {timeout}}}
images:
  - url: https://example.com/a.png
prompts:
  - id: a
    template: "A calm scene"
"""


def manifest(write: WriteManifest, url: str, extra: str = "", timeout: float = 60) -> Path:
    return write(MANIFEST.format(url=url, extra=extra or "kind: akool", timeout=timeout))


def cli_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


# ------------------------------------------------------------------ which variables


@pytest.mark.parametrize(
    "extra",
    [
        "api_key_env: GITHUB_TOKEN",
        "client_id_env: GITHUB_TOKEN",
        "client_secret_env: AWS_SECRET_ACCESS_KEY",
        "api_key_env: akool_key",
    ],
)
def test_manifest_may_not_name_other_variables(write_manifest: WriteManifest, extra: str) -> None:
    """`*_env` must start with AKOOL_ or I2V_: exit 2 with file:line:col, before any request."""
    path = manifest(write_manifest, "http://127.0.0.1:9", extra)
    code, err = cli_run("run", str(path), "--yes")
    assert code == 2
    assert f"{path}:5:" in err and "cannot hold credentials" in err and "I2V_" in err


def test_settings_refuse_other_variables_however_built() -> None:
    """ProviderSettings itself refuses a foreign variable name (not only the schema)."""
    with pytest.raises(ManifestError, match="api_key_env: 'GITHUB_TOKEN' cannot hold"):
        ProviderSettings(api_key_env="GITHUB_TOKEN")
    assert ProviderSettings(api_key_env="I2V_KEY").api_key_env == "I2V_KEY"


# ------------------------------------------------------------------ where they may go


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://openapi.akool.com",
        "https://openapi.akool.com:443/",
        "http://127.0.0.1:5000",
        "http://[::1]:5000",
        "http://localhost:5000",
    ],
)
def test_credentials_go_to_akool_and_loopback(endpoint: str) -> None:
    """The official host over https and loopback addresses need no trust setting."""
    check_credentials_may_go(endpoint, {}, "AKOOL_API_KEY")


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://openapi.akool.com",  # the official host, but in clear text
        "https://openapi.akool.com.evil.example",
        "https://evil.example",
        "http://10.0.0.1:8080",
        "https://user:pw@proxy.example:8443/x",
    ],
)
def test_credentials_refused_elsewhere(endpoint: str) -> None:
    """Any other endpoint is a ConfigError naming it (without user:password) and the fix."""
    with pytest.raises(ConfigError) as info:
        check_credentials_may_go(endpoint, {TRUST_VAR: "other.example"}, "I2V_KEY")
    text = info.value.render()
    assert "I2V_KEY" in text and TRUST_VAR in text and "pw" not in text


def test_environment_trusts_endpoints() -> None:
    """I2V_TRUSTED_ENDPOINTS (hosts or URLs, comma-separated) lets credentials go there."""
    env = {TRUST_VAR: " proxy.example , https://gw.corp:8443/api"}
    check_credentials_may_go("https://proxy.example:8443", env, "I2V_KEY")
    check_credentials_may_go("http://GW.corp/api", env, "I2V_KEY")
    with pytest.raises(ConfigError):
        check_credentials_may_go("https://example", env, "I2V_KEY")


def test_run_refuses_an_untrusted_endpoint_before_any_request(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`i2v run` on an untrusted endpoint exits 2 naming the endpoint and the variable to set."""
    monkeypatch.setenv("I2V_KEY", "secret-value-1")
    monkeypatch.delenv(TRUST_VAR, raising=False)
    path = manifest(write_manifest, "http://10.255.255.1:9", "api_key_env: I2V_KEY")
    started = time.monotonic()
    code, err = cli_run("run", str(path), "--yes")
    assert code == 2 and time.monotonic() - started < 10  # no connection was attempted
    assert "http://10.255.255.1:9" in err and f"{TRUST_VAR}=10.255.255.1" in err
    assert "secret-value-1" not in err
    monkeypatch.setenv(TRUST_VAR, "10.255.255.1")
    campaign = load_campaign(path)
    assert isinstance(credentials(campaign), ApiKeyAuth)


# ------------------------------------------------------------------ what errors say


@pytest.mark.anyio
async def test_auth_hint_names_the_manifests_variables() -> None:
    """An auth failure's hint names the variables the credentials came from."""
    async with aiohttp.ClientSession() as s:
        key = AkoolProvider(s, BASE, ApiKeyAuth("k", "I2V_KEY"))
        token = AkoolProvider(s, BASE, TokenAuth("cid", "csecret", "I2V_ID/I2V_SECRET"))
        with aioresponses() as m:
            m.post(RESULTS, payload={"code": 1101, "msg": "bad key"})
            with pytest.raises(FatalProviderError) as info:
                await key.results(["a"])
            assert info.value.hint is not None and "I2V_KEY" in info.value.hint
            assert "AKOOL_API_KEY" not in info.value.hint
            m.post(TOKEN, payload={"code": 1101, "msg": "bad client"})
            with pytest.raises(FatalProviderError) as info:
                await token.results(["a"])
            assert info.value.hint is not None and "I2V_ID/I2V_SECRET" in info.value.hint
            assert "AKOOL_CLIENT_ID" not in info.value.hint


@pytest.mark.anyio
async def test_timeout_says_who_did_not_answer() -> None:
    """A timed-out read says which host gave no answer within how long."""
    async with aiohttp.ClientSession() as s:
        client = AkoolProvider(s, BASE, ApiKeyAuth("k"), timeout=7)
        with aioresponses() as m:
            m.post(RESULTS, exception=TimeoutError())
            with pytest.raises(TransientError) as info:
                await client.results(["a"])
    assert "no answer from openapi.akool.com within 7 s" in info.value.message


@pytest.mark.anyio
async def test_connect_timeout_on_a_create_is_transient() -> None:
    """A create whose connection never opened was not sent: retryable, never an unknown."""
    async with aiohttp.ClientSession() as s:
        client = AkoolProvider(s, BASE, ApiKeyAuth("k"), timeout=30)
        with aioresponses() as m:
            m.post(BATCH, exception=aiohttp.ConnectionTimeoutError())
            with pytest.raises(
                TransientError, match=r"cannot connect to openapi\.akool\.com within 10 s"
            ):
                await client.create(CreateRequest({"prompt": "p"}, "https://x/a.png"))
            m.post(BATCH, exception=TimeoutError())  # sent, then silence: may exist
            with pytest.raises(UnknownOutcomeError, match=r"no answer from openapi\.akool\.com"):
                await client.create(CreateRequest({"prompt": "p"}, "https://x/a.png"))


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback server that accepts requests and answers none until released."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"code": 1000, "data": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), release
    finally:
        release.set()
        await server.close()


@pytest.mark.anyio
async def test_one_off_calls_use_the_manifests_request_timeout(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`effects --manifest` gives up after the manifest's request_timeout, saying so."""
    import anyio.to_thread

    monkeypatch.setenv("AKOOL_API_KEY", "k")
    async with silent_server() as (url, _):
        path = manifest(write_manifest, url, timeout=1)
        started = time.monotonic()
        code, err = await anyio.to_thread.run_sync(cli_run, "effects", "--manifest", str(path))
        took = time.monotonic() - started
    assert code != 0 and took < 10
    assert "no answer from 127.0.0.1 within 1 s" in err
