"""Downloads against a tiny aiohttp server on a loopback port 0 (and aioresponses where the
address must look public): soft checks keep the video, bad transfers are retried in the run,
and size, stalls and addresses are bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from i2v_pipeline.emulator.render import render_video
from i2v_pipeline.errors import DownloadError, TransientDownloadError
from i2v_pipeline.model import ImageRef, JobSpec, LockEntry
from i2v_pipeline.run.delivery import ATTEMPTS, Delivery
from i2v_pipeline.run.download import Policy, check_url, fetch
from i2v_pipeline.state.journal import Entries, apply

from .conftest import IMAGES

pytestmark = pytest.mark.anyio
LOCAL = Policy(allow_local=True)
Handler = Callable[[web.Request], Any]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 1 s mp4 whose short side is 64 (so any 480p..4k request mismatches it)."""
    out = tmp_path_factory.mktemp("video") / "v.mp4"
    image = (IMAGES / "garden.png").read_bytes()
    render_video(image, out, size=(112, 64), seconds=1, fps=4, motion="zoom_in", audio=False)
    return out.read_bytes()


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v.mp4", handler)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/v.mp4"))
    finally:
        await server.close()


def script(*answers: Callable[[web.Request], Any]) -> tuple[Handler, list[int]]:
    """A handler that gives answers in turn (the last one forever) and counts calls."""
    calls = [0]

    async def handler(request: web.Request) -> Any:
        calls[0] += 1
        answer = answers[min(calls[0], len(answers)) - 1]
        return await answer(request)

    return handler, calls


def ok(data: bytes) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="video/mp4")

    return answer


def status(code: int) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=code, text="busy")

    return answer


def truncated(data: bytes) -> Handler:
    """Announce the whole file, send half, close the connection."""

    async def answer(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return resp

    return answer


async def get(url: str, target: Path, policy: Policy = LOCAL, **kw: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        return await fetch(session, url, target, seconds=1, resolution="720p", policy=policy, **kw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ soft and hard checks


async def test_frame_size_mismatch_keeps_the_file(tmp_path: Path, video: bytes) -> None:
    """verify: warn (the default) keeps a decodable video of the wrong size and says how."""
    async with serve(ok(video)) as url:
        got = await get(url, tmp_path / "a.mp4")
    assert (tmp_path / "a.mp4").read_bytes() == video
    assert got.mismatch == "frame is 112x64, expected a 720p short side"
    assert got.mtime_ns == (tmp_path / "a.mp4").stat().st_mtime_ns


async def test_a_missing_folder_is_made_and_a_file_in_its_place_is_reported(
    tmp_path: Path, video: bytes
) -> None:
    """The target's folders are made when missing (also when removed between two downloads);
    a file where a folder should be fails with the path named, and nothing is left behind."""
    async with serve(ok(video)) as url:
        await get(url, tmp_path / "a" / "b" / "one.mp4")
        shutil.rmtree(tmp_path / "a")
        await get(url, tmp_path / "a" / "b" / "two.mp4")
        (tmp_path / "c").write_text("not a folder")
        with pytest.raises(DownloadError, match=r"cannot write .*c/three\.mp4") as info:
            await get(url, tmp_path / "c" / "three.mp4")
    assert (tmp_path / "a" / "b" / "two.mp4").read_bytes() == video
    assert leftovers(tmp_path / "a" / "b") == ["two.mp4"]
    assert not isinstance(info.value, TransientDownloadError)


async def test_verify_strict_fails_a_mismatch(tmp_path: Path, video: bytes) -> None:
    """verify: strict turns the mismatch into a failure and leaves nothing behind."""
    async with serve(ok(video)) as url:
        with pytest.raises(DownloadError, match=r"112x64.*verify: strict") as info:
            await get(url, tmp_path / "a.mp4", Policy(verify="strict", allow_local=True))
    assert not isinstance(info.value, TransientDownloadError)
    assert leftovers(tmp_path) == []


async def test_verify_off_skips_the_size_check(tmp_path: Path, video: bytes) -> None:
    """verify: off records no mismatch (the decode check still runs)."""
    async with serve(ok(video)) as url:
        got = await get(url, tmp_path / "a.mp4", Policy(verify="off", allow_local=True))
    assert got.mismatch is None and (tmp_path / "a.mp4").read_bytes() == video


async def test_audio_result_without_an_audio_stream_fails(tmp_path: Path, video: bytes) -> None:
    """The audio stage's result must have an audio stream: a silent video is not kept."""
    async with serve(ok(video)) as url:
        with pytest.raises(DownloadError, match="no audio stream") as info:
            await get(url, tmp_path / "a.mp4", Policy(need_audio=True, allow_local=True))
    assert not isinstance(info.value, TransientDownloadError)
    assert leftovers(tmp_path) == []


async def test_audio_result_with_an_audio_stream_is_kept(tmp_path: Path) -> None:
    """A video with an audio stream passes the audio stage's check."""
    out = tmp_path / "src.mp4"
    image = (IMAGES / "garden.png").read_bytes()
    render_video(image, out, size=(112, 64), seconds=1, fps=4, motion="zoom_in", audio=True)
    async with serve(ok(out.read_bytes())) as url:
        await get(url, tmp_path / "a.mp4", Policy(need_audio=True, allow_local=True))
    assert (tmp_path / "a.mp4").read_bytes() == out.read_bytes()


async def test_undecodable_file_is_transient_and_not_kept(tmp_path: Path) -> None:
    """A file that does not decode is never kept: it fails as worth another try."""
    async with serve(ok(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)) as url:
        with pytest.raises(TransientDownloadError, match="not a usable video"):
            await get(url, tmp_path / "a.mp4")
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ retries within the run


def spec() -> JobSpec:
    img = ImageRef("url", "https://x/a.png", "https://x/a.png")
    request = {"prompt": "p", "count": 1, "video_length": 1, "resolution": "720p"}
    return JobSpec(id="j", image=img, request=request, output="j.mp4", fingerprint="f" * 64)


class Requery:
    """The executor's re-query: hands back the same URL and counts the calls."""

    def __init__(self, url: str) -> None:
        self.url, self.calls = url, 0

    async def __call__(self, rid: str) -> str | None:
        self.calls += 1
        return self.url


def fresh_entries() -> Entries:
    s = spec()
    return {s.fingerprint: LockEntry(s.id, s.fingerprint, "succeeded", "a", remote_ids=("r1",))}


async def deliver(
    tmp_path: Path, url: str, entries: Entries | None = None
) -> tuple[list[dict[str, Any]], Requery]:
    """Delivery.download of spec() from url; the records it wrote and the re-query counter."""
    entries = fresh_entries() if entries is None else entries
    records: list[dict[str, Any]] = []
    requery = Requery(url)

    def record(rec: dict[str, Any]) -> None:
        records.append(rec)
        apply(entries, rec)

    async with aiohttp.ClientSession() as session:
        delivery = Delivery(
            session=session,
            base_dir=tmp_path,
            prefix=".",
            entries=entries,
            record=record,
            requery=requery,
            concurrent=1,
            policy=LOCAL,
            retry_base=0.01,
        )
        await delivery.download(spec(), ["r1"], [url])
    return records, requery


@pytest.mark.parametrize("fault", [status(503), "truncated"], ids=["503", "truncated"])
async def test_one_bad_transfer_is_retried_in_the_run(
    tmp_path: Path, video: bytes, fault: Any
) -> None:
    """A 503 or a truncated body once: the same run re-queries the URL and gets the file."""
    first = truncated(video) if fault == "truncated" else fault
    handler, calls = script(first, ok(video))
    async with serve(handler) as url:
        records, requery = await deliver(tmp_path, url)
    assert calls[0] == 2 and requery.calls == 1
    (rec,) = records
    assert rec["t"] == "downloaded" and rec["bytes"] == len(video)
    assert rec["mismatch"].startswith("frame is 112x64")
    assert (tmp_path / "j.mp4").read_bytes() == video


async def test_a_download_that_always_fails_is_an_error(tmp_path: Path) -> None:
    """Every attempt answers 503: DownloadError after ATTEMPTS tries, nothing recorded."""
    handler, calls = script(status(503))
    async with serve(handler) as url:
        with pytest.raises(DownloadError, match=rf"HTTP 503 \(after {ATTEMPTS} attempts\)"):
            await deliver(tmp_path, url)
    assert calls[0] == ATTEMPTS
    assert leftovers(tmp_path) == []


async def test_held_file_is_checked_by_hash_before_skipping(tmp_path: Path, video: bytes) -> None:
    """A same-size file whose content changed is downloaded again, not taken as in place."""
    entries = fresh_entries()
    async with serve(ok(video)) as url:
        assert len((await deliver(tmp_path, url, entries))[0]) == 1
        assert (await deliver(tmp_path, url, entries))[0] == []  # intact: skipped
        (tmp_path / "j.mp4").write_bytes(b"x" * len(video))
        assert len((await deliver(tmp_path, url, entries))[0]) == 1
    assert (tmp_path / "j.mp4").read_bytes() == video


# ------------------------------------------------------------------ bounds


async def test_oversized_download_is_abandoned(tmp_path: Path, video: bytes) -> None:
    """Over max_bytes: refused by Content-Length, or cut off mid-stream when there is none."""
    policy = Policy(max_bytes=1000, allow_local=True)

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"x" * 500)
        return resp

    for handler in (ok(video), chunked):
        async with serve(handler) as url:
            with pytest.raises(DownloadError, match="max_download_bytes") as info:
                await get(url, tmp_path / "a.mp4", policy)
        assert not isinstance(info.value, TransientDownloadError)
    assert leftovers(tmp_path) == []


async def test_stalled_download_times_out_quickly(tmp_path: Path, video: bytes) -> None:
    """No byte for `stall` seconds aborts the download, whatever the request timeout."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = len(video)
        await resp.prepare(request)
        await resp.write(video[:100])
        await release.wait()  # never set before the client gives up
        return resp

    async with serve(stall) as url:
        started = time.monotonic()
        with pytest.raises(TransientDownloadError, match=r"stalled: no data for 0\.3 s"):
            await get(url, tmp_path / "a.mp4", Policy(stall=0.3, connect=60, allow_local=True))
        assert time.monotonic() - started < 5
        release.set()
    assert leftovers(tmp_path) == []


async def test_dripping_download_hits_the_whole_download_deadline(
    tmp_path: Path, video: bytes
) -> None:
    """A byte now and then resets the stall timer but not the whole-download deadline."""
    release = asyncio.Event()

    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = len(video)
        await resp.prepare(request)
        for byte in video:
            await resp.write(bytes([byte]))
            with contextlib.suppress(TimeoutError):  # a byte every 0.05 s, or stop when released
                await asyncio.wait_for(release.wait(), 0.05)
            if release.is_set():
                break
        return resp

    policy = Policy(stall=0.5, deadline=1.0, connect=60, allow_local=True)
    async with serve(drip) as url:
        started = time.monotonic()
        with pytest.raises(DownloadError, match=r"not finished within 1 s") as info:
            with anyio.fail_after(10):  # without the deadline: the length of the drip
                await get(url, tmp_path / "a.mp4", policy)
        assert time.monotonic() - started < 5
        assert not isinstance(info.value, TransientDownloadError)  # not retried in this run
        release.set()
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ confinement


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/v.mp4",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8080/v.mp4",
        "http://[::1]/v.mp4",
        "http://[::ffff:192.168.1.1]/v.mp4",
        "http://localhost/v.mp4",
        "http://0.0.0.0/v.mp4",
    ],
)
async def test_local_result_urls_refused_for_a_remote_endpoint(url: str) -> None:
    """A remote API's result URL may not reach loopback, link-local or private addresses."""
    with pytest.raises(DownloadError, match="refusing the result URL"):
        await check_url(url, allow_local=False)
    await check_url(url, allow_local=True)  # the emulator / a local endpoint: allowed


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://cdn.example/v.mp4", "v.mp4"])
async def test_non_http_result_urls_refused(url: str) -> None:
    """Only http and https, even for a local endpoint."""
    with pytest.raises(DownloadError, match="refusing the result URL: scheme"):
        await check_url(url, allow_local=True)


async def test_redirect_to_a_private_address_is_refused(tmp_path: Path, video: bytes) -> None:
    """A public URL that redirects to the metadata service is refused at the redirect."""
    public = "http://93.184.216.34/v.mp4"
    with aioresponses() as mock:
        mock.get(public, status=302, headers={"Location": "http://169.254.169.254/x"})
        mock.get("http://169.254.169.254/x", body=video)
        with pytest.raises(DownloadError, match=r"169\.254\.169\.254 is a local"):
            await get(public, tmp_path / "a.mp4", Policy())
        mock.get(public, body=video)
        got = await get(public, tmp_path / "a.mp4", Policy())  # a public one is fine
    assert got.bytes == len(video)


def test_endpoint_decides_whether_local_results_are_allowed(write_manifest: Any) -> None:
    """The emulator and loopback endpoints may hand out local URLs; a remote API may not."""
    from i2v_pipeline.run.session import download_policy
    from i2v_pipeline.spec.campaign import load_campaign

    campaign = load_campaign(write_manifest())
    assert download_policy(campaign, "http://127.0.0.1:5000", emulator=False).allow_local
    assert download_policy(campaign, "http://x", emulator=True).allow_local
    remote = download_policy(campaign, "https://openapi.akool.com", emulator=False)
    assert not remote.allow_local
    assert remote.max_bytes == 2 << 30 and remote.stall == 60 and remote.verify == "warn"


def test_part_files_of_killed_runs_are_swept(tmp_path: Path) -> None:
    """A killed run's `.name.PID.part` is removed once its pid is gone; a running process's
    part (another manifest sharing the folder) and other files are left alone."""
    import subprocess
    import sys

    from i2v_pipeline.run.download import sweep_parts

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    stale = tmp_path / f".a.mp4.{dead}.part"
    live = tmp_path / f".b.mp4.{os.getppid()}.part"
    mine = tmp_path / f".c.mp4.{os.getpid()}.part"
    other = tmp_path / "notes.part"
    for path in (stale, live, mine, other):
        path.write_bytes(b"x")
    assert sweep_parts(tmp_path) == 1
    assert not stale.exists() and live.exists() and mine.exists() and other.exists()
    assert sweep_parts(tmp_path / "missing") == 0
