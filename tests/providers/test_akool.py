"""The AKOOL client at the HTTP boundary (aioresponses): shapes, codes, classification."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aioresponses import aioresponses

from i2v_pipeline.errors import (
    FatalProviderError,
    JobRejectedError,
    ThrottledError,
    TransientError,
    UnknownOutcomeError,
)
from i2v_pipeline.model import JobStatus
from i2v_pipeline.run.providers.akool import (
    AkoolProvider,
    ApiKeyAuth,
    TokenAuth,
    auth_from_env,
    classify,
    parse_retry_after,
)
from i2v_pipeline.run.providers.base import CreateRequest

pytestmark = pytest.mark.anyio
REQ = CreateRequest({"prompt": "p"}, "https://x/a.png")
"""A create as the executor hands it to the provider."""
BASE = "https://openapi.akool.com"
BATCH = f"{BASE}/api/open/v4/image2Video/createBySourcePrompt/batch"
RESULTS = f"{BASE}/api/open/v4/image2Video/resultsByIds"

DOC_BATCH = {
    "code": 1000,
    "msg": "OK",
    "data": {
        "successList": [
            {
                "_id": "689174694b4dbdd4ab3d28c9",
                "create_time": 1754362985482,
                "status": 1,
                "deduction_credit": 5,
                "batch_id": "1754362985482_101400",
                "batch_count": 3,
            },
            {
                "_id": "689174694b4dbdd4ab3d28ca",
                "create_time": 1754362985483,
                "deduction_credit": 5,
            },
            {
                "_id": "689174694b4dbdd4ab3d28cb",
                "create_time": 1754362985484,
                "deduction_credit": 5,
            },
        ],
        "errorList": [],
    },
}
DOC_SINGLE = {
    "code": 1000,
    "msg": "OK",
    "data": {
        "_id": "689174694b4dbdd4ab3d28c9",
        "status": 1,
        "deduction_credit": 60,
        "webhookUrl": "",
    },
}
DOC_RESULTS = {
    "code": 1000,
    "msg": "OK",
    "data": {
        "result": [
            {
                "_id": "6891a2295d612f78c9204f77",
                "video_duration": 5.063,
                "deduction_credit": 5,
                "status": 1,
            },
            {
                "_id": "6891abe782f7cd2a890c44ba",
                "sub_type": 1501,
                "video_duration": 5.063,
                "deduction_credit": 30,
                "video_url": "https://d2qf6ukcym4kn9.cloudfront.net/1754377291791-1423.mp4",
                "status": 3,
                "only_add_audio": False,
            },
        ]
    },
}


@pytest.fixture
async def client() -> AsyncIterator[AkoolProvider]:
    async with aiohttp.ClientSession() as s:
        yield AkoolProvider(s, BASE, ApiKeyAuth("k-secret"))


async def test_batch_doc_example_parses(client: AkoolProvider) -> None:
    """The docs' batch example gives three ids and the summed credits; the key is sent."""
    with aioresponses() as m:
        m.post(BATCH, payload=DOC_BATCH)
        created = await client.create(REQ)
        (call,) = m.requests[("POST", aiohttp.client.URL(BATCH))]
    assert created.ids == (
        "689174694b4dbdd4ab3d28c9",
        "689174694b4dbdd4ab3d28ca",
        "689174694b4dbdd4ab3d28cb",
    )
    assert created.credits == 15
    assert call.kwargs["headers"] == {"x-api-key": "k-secret"}


async def test_single_object_shape_tolerated(client: AkoolProvider) -> None:
    """A `data` object (single-create shape) is read as one video."""
    with aioresponses() as m:
        m.post(BATCH, payload=DOC_SINGLE)
        assert (await client.create(REQ)).ids == ("689174694b4dbdd4ab3d28c9",)


async def test_results_doc_example_and_string_ids(client: AkoolProvider) -> None:
    """resultsByIds sends `_ids` as one comma-joined string and reads the docs' example."""
    with aioresponses() as m:
        m.post(RESULTS, payload=DOC_RESULTS)
        rows = await client.results(["a", "b"])
        (call,) = m.requests[("POST", aiohttp.client.URL(RESULTS))]
    assert call.kwargs["json"] == {"_ids": "a,b"}
    assert [(r.status, r.video_url is not None) for r in rows] == [(1, False), (3, True)]
    assert rows[1].duration == 5.063 and rows[1].credits == 30


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (1005, ThrottledError),
        (1015, TransientError),
        (1003, JobRejectedError),
        (1008, JobRejectedError),
        (1101, FatalProviderError),
        (1102, FatalProviderError),
        (1109, FatalProviderError),
        (1200, FatalProviderError),
        (1104, FatalProviderError),
        (1006, FatalProviderError),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else v.__name__,
)
async def test_every_code_is_classified(client: AkoolProvider, code: int, cls: type) -> None:
    """Each documented code maps to exactly one class, through the real client."""
    with aioresponses() as m:
        m.post(RESULTS, payload={"code": code, "msg": "m"})
        with pytest.raises(cls) as info:
            await client.results(["a"])
    assert type(info.value) is cls
    assert type(classify(code, "m")) is cls


async def test_429_honours_retry_after(client: AkoolProvider) -> None:
    """HTTP 429 is a throttle carrying Retry-After."""
    with aioresponses() as m:
        m.post(RESULTS, status=429, headers={"Retry-After": "3"})
        with pytest.raises(ThrottledError) as info:
            await client.results(["a"])
    assert info.value.retry_after == 3


async def test_create_transport_errors(client: AkoolProvider) -> None:
    """Connection refused before sending is transient; a drop after sending is unknown; a bare
    5xx on a create is unknown, on a read transient."""
    with aioresponses() as m:
        m.post(
            BATCH,
            exception=aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey("h", 443, True, None, None, None, None),
                OSError(111, "refused"),
            ),
        )
        with pytest.raises(TransientError):
            await client.create(REQ)
        m.post(BATCH, exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(UnknownOutcomeError):
            await client.create(REQ)
        m.post(BATCH, exception=TimeoutError())
        with pytest.raises(UnknownOutcomeError):
            await client.create(REQ)
        m.post(BATCH, status=502, body="<html>bad gateway</html>")
        with pytest.raises(UnknownOutcomeError):
            await client.create(REQ)
        m.post(BATCH, status=503, payload={"code": 1015, "msg": "busy"})
        with pytest.raises(TransientError):
            await client.create(REQ)
        m.post(RESULTS, status=502, body="bad gateway")
        with pytest.raises(TransientError):
            await client.results(["a"])


async def test_token_flow_fetches_once() -> None:
    """The token flow calls getToken once, reads the top-level token, then sends Bearer."""
    async with aiohttp.ClientSession() as s:
        client = AkoolProvider(s, BASE, TokenAuth("cid", "csecret"))
        with aioresponses() as m:
            m.post(f"{BASE}/api/open/v3/getToken", payload={"code": 1000, "token": "tok"})
            m.post(RESULTS, payload={"code": 1000, "data": {"result": []}}, repeat=True)
            await client.results(["a"])
            await client.results(["b"])
            calls = m.requests[("POST", aiohttp.client.URL(RESULTS))]
            assert (
                len(m.requests[("POST", aiohttp.client.URL(f"{BASE}/api/open/v3/getToken"))]) == 1
            )
    assert calls[1].kwargs["headers"] == {"Authorization": "Bearer tok"}
    assert "csecret" not in repr(client.auth)


def test_retry_after_parsing() -> None:
    """Seconds or an HTTP date, capped; junk is ignored."""
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("9999") == 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480) == 10
    assert parse_retry_after("soon") is None


def test_auth_from_env() -> None:
    """API key first, then the client id/secret pair; neither is a ConfigError naming them."""
    from i2v_pipeline.errors import ConfigError

    assert isinstance(auth_from_env({"K": "x"}, "K", "I", "S"), ApiKeyAuth)
    assert isinstance(auth_from_env({"I": "a", "S": "b"}, "K", "I", "S"), TokenAuth)
    with pytest.raises(ConfigError, match="set K"):
        auth_from_env({}, "K", "I", "S")


async def test_create_request_becomes_akools_wire_body(client: AkoolProvider) -> None:
    """Our CreateRequest maps to AKOOL's body: fields, image_url, last_image_url, webhookurl."""
    request = CreateRequest(
        {"prompt": "p", "count": 3}, "https://x/a.png", "https://x/b.png", "https://hook/x"
    )
    with aioresponses() as m:
        m.post(BATCH, payload=DOC_BATCH)
        await client.create(request)
        (call,) = m.requests[("POST", aiohttp.client.URL(BATCH))]
    assert call.kwargs["json"] == {
        "prompt": "p",
        "count": 3,
        "image_url": "https://x/a.png",
        "last_image_url": "https://x/b.png",
        "webhookurl": "https://hook/x",
    }


async def test_results_statuses_are_ours(client: AkoolProvider) -> None:
    """AKOOL's numeric statuses come back as JobStatus members."""
    with aioresponses() as m:
        m.post(RESULTS, payload=DOC_RESULTS)
        rows = await client.results(["a", "b"])
    assert [r.status for r in rows] == [JobStatus.QUEUED, JobStatus.SUCCEEDED]
    assert all(type(r.status) is JobStatus for r in rows)


async def test_exchanges_are_logged_without_secrets(
    client: AkoolProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Each exchange logs method, path, AKOOL code, latency and ids under i2v.api, never the key."""
    caplog.set_level(logging.DEBUG, logger="i2v.api")
    with aioresponses() as m:
        m.post(BATCH, payload=DOC_BATCH)
        m.post(RESULTS, payload=DOC_RESULTS)
        m.post(RESULTS, payload={"code": 1101, "msg": "bad key k-secret"})
        await client.create(REQ)
        await client.results(["689174694b4dbdd4ab3d28c9"])
        with pytest.raises(FatalProviderError):
            await client.results(["a"])
    lines = [r.getMessage() for r in caplog.records if r.name == "i2v.api"]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "i2v.api")
    create, created, poll, refused = lines
    assert create.startswith("POST /api/open/v4/image2Video/createBySourcePrompt/batch ")
    assert "code=1000" in create and " ms" in create
    assert created == (
        "created ids=689174694b4dbdd4ab3d28c9,689174694b4dbdd4ab3d28ca,689174694b4dbdd4ab3d28cb"
    )
    assert poll.startswith("POST /api/open/v4/image2Video/resultsByIds ")
    assert "code=1000" in poll and "ids=689174694b4dbdd4ab3d28c9" in poll
    assert "code=1101" in refused
    assert not any("k-secret" in line for line in lines)


AUDIO = BASE + "/api/open/v4/image2Video/updateVideoAudio"
DOC_AUDIO = {  # akool-api.md §6, trimmed
    "code": 1000,
    "msg": "OK",
    "data": {
        "_id": "6891a2295d612f78c9204f77",
        "pre_video_id": "6891a07f5d612f78c9204f1c",
        "audio_type": 2,
        "audio_url": "https://x/a.mp3",
        "deduction_credit": 5,
        "status": 1,
        "only_add_audio": True,
    },
}


async def test_update_audio_doc_example_and_body(client: AkoolProvider) -> None:
    """updateVideoAudio sends pre_video_id with the audio request and reads the new record's
    id and credits (§6)."""
    with aioresponses() as m:
        m.post(AUDIO, payload=DOC_AUDIO)
        created = await client.update_audio(
            "6891a07f5d612f78c9204f1c", {"audio_type": 2, "audio_url": "https://x/a.mp3"}
        )
        (call,) = m.requests[("POST", aiohttp.client.URL(AUDIO))]
    assert created.ids == ("6891a2295d612f78c9204f77",) and created.credits == 5
    assert call.kwargs["json"] == {
        "pre_video_id": "6891a07f5d612f78c9204f1c",
        "audio_type": 2,
        "audio_url": "https://x/a.mp3",
    }


async def test_update_audio_outcomes_are_classified_like_a_create(client: AkoolProvider) -> None:
    """A dropped answer or a bare 5xx is unknown (it may have been bought), a refusal before
    sending is transient, a 1003 rejects it."""
    request = {"audio_type": 1, "audio_url": ""}
    with aioresponses() as m:
        m.post(AUDIO, exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(UnknownOutcomeError):
            await client.update_audio("v", request)
        m.post(AUDIO, status=502, body="bad gateway")
        with pytest.raises(UnknownOutcomeError):
            await client.update_audio("v", request)
        m.post(AUDIO, payload={"code": 1000, "msg": "OK", "data": {"status": 1}})
        with pytest.raises(UnknownOutcomeError):  # OK without an id: something was made
            await client.update_audio("v", request)
        m.post(
            AUDIO,
            exception=aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey("h", 443, True, None, None, None, None),
                OSError(111, "refused"),
            ),
        )
        with pytest.raises(TransientError):
            await client.update_audio("v", request)
        m.post(AUDIO, payload={"code": 1003, "msg": "pre_video_id must be a completed video"})
        with pytest.raises(JobRejectedError):
            await client.update_audio("v", request)
