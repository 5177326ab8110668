"""The emulator against akool-api.md: endpoints, codes, clock, webhooks, renders, faults."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web

from i2v_pipeline.emulator import Emulator, EmulatorConfig, Faults, ManualClock
from i2v_pipeline.webhook_crypto import open_sealed

from ..conftest import IMAGES

pytestmark = pytest.mark.anyio
V4 = "/api/open/v4/image2Video"
KEY = {"x-api-key": "emulator-key"}
TOWER = (IMAGES / "tower.png").as_uri()


def body(**kw: Any) -> dict[str, Any]:
    return {"image_url": TOWER, "prompt": "slow pan", "resolution": "720p", "video_length": 5, **kw}


@pytest.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emulator]:
    clock = ManualClock()
    async with Emulator(
        EmulatorConfig(cache_dir=tmp_path, queue_time=1, processing_time=10, max_processing=2),
        clock=clock,
    ) as e:
        yield e


async def post(e: Emulator, path: str, json: Any, headers: dict[str, str] = KEY) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(e.base_url + path, json=json, headers=headers) as r,
    ):
        assert r.status == 200
        return await r.json()  # type: ignore[no-any-return]


async def get(e: Emulator, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(e.base_url + path, headers=KEY) as r:
        return await r.json()  # type: ignore[no-any-return]


async def test_batch_lifecycle_and_download(emu: Emulator) -> None:
    """Batch creates count videos; status goes 1 -> 2 -> 3 on the clock, with the processing
    cap; the URL serves a real MP4 of the right size and length."""
    doc = await post(emu, f"{V4}/createBySourcePrompt/batch", body(count=3, audio_type="1"))
    items = doc["data"]["successList"]
    assert doc["code"] == 1000 and len(items) == 3 and doc["data"]["errorList"] == []
    assert items[0]["batch_count"] == 3 and items[0]["deduction_credit"] == 20
    assert items[0]["file_name"] == "Image2Video_slow pan.mp4" and "video_url" not in items[0]
    ids = ",".join(i["_id"] for i in items)
    emu.advance(1.5)
    res = (await post(emu, f"{V4}/resultsByIds", {"_ids": ids}))["data"]["result"]
    assert [r["status"] for r in res] == [2, 2, 1]  # only two may process at once
    emu.advance(10)
    res = (await post(emu, f"{V4}/resultsByIds", {"_ids": ids}))["data"]["result"]
    assert [r["status"] for r in res] == [3, 3, 2]
    assert res[0]["video_duration"] == 5.0 and "video_url" not in res[2]
    async with aiohttp.ClientSession() as s, s.get(res[0]["video_url"]) as r:
        assert r.status == 200
        data = await r.read()
    path = emu.media.cache_dir / "check.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (720, 1280)  # portrait
        assert abs(c.duration / 1e6 - 5) < 0.3
        assert v.frames == 5 * emu.config.fps
        assert [s.type for s in c.streams] == ["video", "audio"]


async def test_results_needs_a_string(emu: Emulator) -> None:
    """`_ids` as an array fails like the real one; unknown ids are left out."""
    doc = await post(emu, f"{V4}/resultsByIds", {"_ids": ["a", "b"]})
    assert doc == {"code": 1003, "msg": "Failed to get results"}
    doc = await post(emu, f"{V4}/resultsByIds", {"_ids": "ffffffffffffffffffffffff"})
    assert doc["data"]["result"] == []


async def test_each_request_is_logged_without_the_key(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve -v` shows one DEBUG record per request: method, path, code; never the key."""
    with caplog.at_level(logging.DEBUG, logger="i2v.emulator"):
        await post(emu, f"{V4}/resultsByIds", {"_ids": "ffffffffffffffffffffffff"})
    lines = [r.getMessage() for r in caplog.records if r.name == "i2v.emulator"]
    assert lines == [f"POST {V4}/resultsByIds code=1000 http=200"]
    assert "emulator-key" not in caplog.text


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, 1102), ({"x-api-key": "nope"}, 1109), ({"Authorization": "Bearer nope"}, 1101)],
    ids=["none", "bad-key", "bad-token"],
)
async def test_auth_codes(emu: Emulator, headers: dict[str, str], code: int) -> None:
    """Missing auth 1102, unknown key 1109, bad token 1101, all HTTP 200."""
    assert (await post(emu, f"{V4}/resultsByIds", {"_ids": "x"}, headers))["code"] == code


async def test_token_flow(emu: Emulator) -> None:
    """getToken returns a top-level token that then works as Bearer (and wins over x-api-key)."""
    doc = await post(
        emu,
        "/api/open/v3/getToken",
        {"clientId": emu.config.client_id, "clientSecret": emu.config.client_secret},
        {},
    )
    assert doc["code"] == 1000 and "data" not in doc
    headers = {"Authorization": f"Bearer {doc['token']}", "x-api-key": "wrong"}
    assert (await post(emu, f"{V4}/resultsByIds", {"_ids": "x"}, headers))["code"] == 1000


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"prompt": ""}, "prompt"),
        ({"resolution": "8k"}, "resolution"),
        ({"video_length": 7}, "video_length"),
        ({"count": 11}, "count"),
        ({"audio_type": 2}, "audio_url"),
        ({"model_name": "nope"}, "model_name"),
    ],
    ids=["prompt", "resolution", "duration", "count", "audio", "model"],
)
async def test_parameter_errors_name_the_field(
    emu: Emulator, change: dict[str, Any], needle: str
) -> None:
    """1003 names the bad field."""
    doc = await post(emu, f"{V4}/createBySourcePrompt/batch", body(**change))
    assert doc["code"] == 1003 and needle in doc["msg"]


async def test_tolerant_shapes_single_create_and_webhook_spelling(emu: Emulator) -> None:
    """Single create returns an object; webhookUrl and webhookurl both land in webhookUrl;
    the demo's string audio_type and dropped batch fields are accepted."""
    doc = await post(emu, f"{V4}/createBySourcePrompt", body(webhookUrl="http://127.0.0.1:9/h"))
    assert doc["data"]["webhookUrl"] == "http://127.0.0.1:9/h" and doc["data"]["status"] == 1
    doc = await post(
        emu,
        f"{V4}/createBySourcePrompt/batch",
        body(
            webhookurl="http://x/h",
            audio_type="3",
            audio_url="",
            is_premium_model=False,
            effect_code="squish_89244231312",
        ),
    )
    item = doc["data"]["successList"][0]
    assert item["webhookUrl"] == "http://x/h" and item["effect_name"] == "Squish"


async def test_credits_and_refunds(tmp_path: Path) -> None:
    """Credits go at create, come back on status 4, and 1104 when short."""
    cfg = EmulatorConfig(
        cache_dir=tmp_path, credits=50, fail_share=1.0, queue_time=0, processing_time=1
    )
    async with Emulator(cfg, clock=ManualClock()) as e:
        assert (await post(e, f"{V4}/createBySourcePrompt/batch", body(count=2)))["code"] == 1000
        assert (await get(e, "/api/open/v3/faceswap/quota/info"))["data"]["credit"] == 10
        assert (await post(e, f"{V4}/createBySourcePrompt/batch", body()))["code"] == 1104
        e.advance(2)
        assert (await get(e, "/api/open/v3/faceswap/quota/info"))["data"]["credit"] == 50


async def test_delete_refuses_processing_and_expiry_403(emu: Emulator) -> None:
    """Processing videos go to noPermissionItems; finished ones delete; URLs expire with 403."""
    ids = [
        i["_id"]
        for i in (await post(emu, f"{V4}/createBySourcePrompt/batch", body(count=2)))["data"][
            "successList"
        ]
    ]
    emu.advance(1.5)
    doc = await post(emu, f"{V4}/delbyids", {"_ids": ids[0]})
    assert doc["msg"] == "Delete successfully" and doc["data"]["successIds"] == []
    assert "processing" in doc["data"]["noPermissionItems"][0]["msg"]
    emu.advance(10)
    res = (await post(emu, f"{V4}/resultsByIds", {"_ids": ids[1]}))["data"]["result"][0]
    emu.advance(emu.config.expiry + 1)
    async with aiohttp.ClientSession() as s, s.get(res["video_url"]) as r:
        assert r.status == 403
    assert (await post(emu, f"{V4}/delbyids", {"_ids": ids[0]}))["data"]["successIds"] == [ids[0]]


async def test_update_audio_only_for_finished(emu: Emulator) -> None:
    """updateVideoAudio needs a finished video and makes a new record."""
    (vid,) = [
        i["_id"]
        for i in (await post(emu, f"{V4}/createBySourcePrompt/batch", body()))["data"][
            "successList"
        ]
    ]
    req = {"pre_video_id": vid, "audio_type": 2, "audio_url": "http://127.0.0.1:9/a.mp3"}
    assert (await post(emu, f"{V4}/updateVideoAudio", req))["code"] == 1003
    emu.advance(12)
    doc = await post(emu, f"{V4}/updateVideoAudio", req)
    assert (
        doc["code"] == 1000 and doc["data"]["_id"] != vid and doc["data"]["only_add_audio"] is True
    )
    assert doc["data"]["deduction_credit"] == 5


async def test_update_audio_bills_by_length_and_adds_an_audio_stream(emu: Emulator) -> None:
    """updateVideoAudio on a silent 10 s video costs 10 credits (5 s: 5) and serves an MP4 with
    an audio stream (akool-api.md §6)."""
    silent = body(video_length=10, audio_type=3)
    (vid,) = (await post(emu, f"{V4}/createBySourcePrompt/batch", silent))["data"]["successList"]
    emu.advance(12)
    before = emu.state.account.credits
    req = {"pre_video_id": vid["_id"], "audio_type": 1}
    doc = await post(emu, f"{V4}/updateVideoAudio", req)
    assert doc["code"] == 1000 and doc["data"]["pre_video_id"] == vid["_id"]
    assert doc["data"]["deduction_credit"] == 10 and emu.state.account.credits == before - 10
    emu.advance(12)
    ids = f"{vid['_id']},{doc['data']['_id']}"
    res = {
        r["_id"]: r
        for r in (await post(emu, f"{V4}/resultsByIds", {"_ids": ids}))["data"]["result"]
    }
    streams = {}
    for rid, row in res.items():
        assert row["status"] == 3
        async with aiohttp.ClientSession() as s, s.get(row["video_url"]) as r:
            path = emu.media.cache_dir / f"{rid}.mp4"
            path.write_bytes(await r.read())
        with av.open(str(path)) as c:
            streams[rid] = [st.type for st in c.streams]
            assert abs(c.duration / 1e6 - 10) < 0.3
    assert streams[vid["_id"]] == ["video"]
    assert streams[doc["data"]["_id"]] == ["video", "audio"]


async def test_models_effects(emu: Emulator) -> None:
    """Model list is a bare array for types[]=1501, empty for other types; effects has count."""
    assert len((await get(emu, "/api/open/v4/aigModel/list?types[]=1501"))["data"]) == 4
    assert (await get(emu, "/api/open/v4/aigModel/list?types[]=1502"))["data"] == []
    doc = await get(emu, f"{V4}/effects")
    assert doc["msg"] == "Success" and doc["data"]["count"] == len(doc["data"]["result"]) == 10


async def test_throttle_1005(tmp_path: Path) -> None:
    """Past the per-key rate the emulator answers 1005."""
    async with Emulator(EmulatorConfig(cache_dir=tmp_path, throttle_rps=3)) as e:
        codes = [(await post(e, f"{V4}/resultsByIds", {"_ids": "x"}))["code"] for _ in range(6)]
    assert codes[:3] == [1000] * 3 and 1005 in codes[3:]


async def test_faults(tmp_path: Path) -> None:
    """5xx with an envelope, dropped connections, truncated downloads, as configured."""
    faults = {
        "results": Faults(http_5xx=1.0),
        "effects": Faults(drop=1.0),
        "video": Faults(truncate=1.0),
    }
    async with (
        Emulator(
            EmulatorConfig(cache_dir=tmp_path, faults=faults, queue_time=0, processing_time=0),
            clock=ManualClock(),
        ) as e,
        aiohttp.ClientSession(headers=KEY) as s,
    ):
        async with s.post(e.base_url + f"{V4}/resultsByIds", json={"_ids": "x"}) as r:
            assert r.status == 503 and (await r.json())["code"] == 1015
        with pytest.raises(aiohttp.ClientError):
            async with s.get(e.base_url + f"{V4}/effects") as r:
                await r.read()
        item = (await post(e, f"{V4}/createBySourcePrompt/batch", body()))["data"]["successList"][0]
        e.advance(1)
        full = (await e.media.video_for(e.state.jobs[item["_id"]])).stat().st_size
        async with s.get(f"{e.base_url}/_emulator/videos/{item['_id']}.mp4") as r:
            assert len(await r.read()) == full // 2


async def test_render_cache(tmp_path: Path) -> None:
    """Many jobs on one image and prompt render once."""
    async with Emulator(
        EmulatorConfig(cache_dir=tmp_path, queue_time=0, processing_time=0), clock=ManualClock()
    ) as e:
        items = (await post(e, f"{V4}/createBySourcePrompt/batch", body(count=5)))["data"][
            "successList"
        ]
        e.advance(1)
        paths = {await e.media.video_for(e.state.jobs[i["_id"]]) for i in items}
    assert len(paths) == 1 and e.media.renders == 1


async def test_webhooks_signed_encrypted_retried(tmp_path: Path) -> None:
    """Each status change is POSTed, signed and encrypted as documented, retried until 200."""
    got: list[dict[str, Any]] = []
    calls = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=500)  # the first attempt fails: it must be retried
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cfg = EmulatorConfig(
        cache_dir=tmp_path, queue_time=0.01, processing_time=0.05, webhook_retry=0.01
    )
    try:
        async with Emulator(cfg) as e:
            await post(
                e,
                f"{V4}/createBySourcePrompt/batch",
                body(webhookurl=f"http://127.0.0.1:{port}/hook"),
            )
            import anyio

            with anyio.fail_after(10):
                while len(got) < 2:
                    await anyio.sleep(0.02)
    finally:
        await runner.cleanup()
    plain = [open_sealed(b, cfg.client_id, cfg.client_secret) for b in got]
    assert [p["status"] for p in plain] == [2, 3]
    assert plain[1]["url"].endswith(".mp4") and plain[1]["type"] == "image2video"
    assert calls == 3


async def test_latency_and_drop_before(tmp_path: Path) -> None:
    """Added latency delays answers; drop_before closes the connection before any create."""
    import anyio

    faults = {"effects": Faults(latency=0.2), "batch": Faults(drop_before=1.0)}
    async with Emulator(EmulatorConfig(cache_dir=tmp_path, faults=faults)) as e:
        start = anyio.current_time()
        await get(e, f"{V4}/effects")
        assert anyio.current_time() - start >= 0.2
        async with aiohttp.ClientSession(headers=KEY) as s:
            with pytest.raises(aiohttp.ClientError):
                async with s.post(
                    e.base_url + f"{V4}/createBySourcePrompt/batch", json=body()
                ) as r:
                    await r.read()
        assert sum(e.state.creates.values()) == 0


async def test_unknown_pre_video_is_1008(emu: Emulator) -> None:
    """updateVideoAudio on an id that does not exist answers 1008."""
    doc = await post(
        emu, f"{V4}/updateVideoAudio", {"pre_video_id": "ffffffffffffffffffffffff", "audio_type": 1}
    )
    assert doc["code"] == 1008


def test_motion_follows_the_prompt() -> None:
    """The camera move follows words in the prompt, else a stable hash of it."""
    from i2v_pipeline.emulator.render import MOTIONS, pick_motion

    assert pick_motion("Slow dolly-in on the garden") == "zoom_in"
    assert pick_motion("Gentle left-to-right pan") == "pan_right"
    assert pick_motion("Zoom out to reveal the city") == "zoom_out"
    assert pick_motion("a cat") == pick_motion("a cat") in MOTIONS
