"""Published local images: the check `run` makes before buying and `i2v publish-check`, against
a local aiohttp server on a loopback port 0 (good, missing, wrong size, wrong type, HEAD
refused, slow)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.run import publish
from i2v_pipeline.run.publish import Published

from ..conftest import IMAGES, ThreadedEmulator, WriteManifest


class ImageServer:
    """Serves the sample images the way a badly kept bucket might, one behaviour per path prefix
    (the image's file name is the last part): /good/.../NAME as is; /wrongsize/ one byte
    short; /html/ as text/html; /nohead/ refuses HEAD (405) and answers a ranged GET; /slow/
    never answers; anything else 404."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.in_flight = 0
        self.most_in_flight = 0
        self.methods: list[tuple[str, str]] = []
        ready = threading.Event()
        self.release = asyncio.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_route("*", "/{kind}/{tail:.+}", self.handle)
            self.runner = web.AppRunner(app)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = self.runner.addresses[0][1]
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind, name = request.match_info["kind"], request.match_info["tail"].rpartition("/")[2]
        self.methods.append((request.method, kind))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)  # overlap concurrent requests, so the cap is visible
            return await self._answer(request, kind, name)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, kind: str, name: str) -> web.StreamResponse:
        path = IMAGES / name
        if not path.is_file() or kind not in ("good", "wrongsize", "html", "nohead", "slow"):
            return web.Response(status=404)
        body = path.read_bytes()
        if kind == "slow":
            await self.release.wait()
        if kind == "wrongsize":
            body = body[:-1]
        ctype = "text/html" if kind == "html" else "image/png"
        if kind == "nohead":
            if request.method == "HEAD":
                return web.Response(status=405)
            assert request.headers.get("Range") == "bytes=0-0"
            headers = {"Content-Range": f"bytes 0-0/{len(body)}"}
            return web.Response(status=206, body=body[:1], content_type=ctype, headers=headers)
        return web.Response(body=body, content_type=ctype)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def images() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


def published(server: ImageServer, kind: str, name: str = "garden.png") -> Published:
    path = IMAGES / name
    return Published(
        f"images/{name}", str(path), f"{server.url}/{kind}/{name}", path.stat().st_size
    )


async def check(server: ImageServer, *items: Published, **kw: float) -> list[publish.Finding]:
    async with aiohttp.ClientSession() as session:
        return await publish.check(session, items, **kw)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_each_kind_of_bad_publication_is_named(images: ImageServer) -> None:
    """Good passes; missing, wrong size and wrong type each fail with their own reason; a
    server refusing HEAD is asked with a one-byte ranged GET and its Content-Range total."""
    found = await check(
        images,
        published(images, "good"),
        published(images, "missing"),
        published(images, "wrongsize"),
        published(images, "html"),
        published(images, "nohead"),
    )
    problems = [f.problem for f in found]
    assert problems[0] is None and problems[4] is None
    assert problems[1] == "HTTP 404"
    assert problems[2] is not None and "bytes published" in problems[2]
    assert problems[3] == "content type text/html, not an image"
    assert ("HEAD", "nohead") in images.methods and ("GET", "nohead") in images.methods
    assert ("GET", "good") not in images.methods  # HEAD sufficed
    assert found[4].remote_size == (IMAGES / "garden.png").stat().st_size


@pytest.mark.anyio
async def test_a_silent_server_times_out(images: ImageServer) -> None:
    """An image whose server never answers is reported after the timeout, not waited on."""
    (finding,) = await check(images, published(images, "slow"), timeout=0.3)
    assert finding.problem == "no answer within 0.3 s"


@pytest.mark.anyio
async def test_checks_are_concurrency_limited(images: ImageServer) -> None:
    """No more than `concurrent` requests are in flight at once."""
    items = [published(images, "good", n) for n in ("garden.png", "sunrise.png", "tower.png")]
    found = await check(images, *(items * 3), concurrent=2)
    assert all(f.ok for f in found) and len(found) == 9
    assert images.most_in_flight == 2


MANIFEST = """\
version: 1
name: pub
provider: {{endpoint: "{url}", image_base_url: "{base}"}}
images:
  - glob: "images/*.png"
prompts:
  - id: dolly
    template: "Dolly in on {{{{ image.id }}}}"
output:
  dir: out
  path: "{{{{ image.id }}}}/{{{{ prompt.id }}}}.mp4"
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_run_refuses_stale_images_and_buys_nothing(
    emulator: ThreadedEmulator, images: ImageServer, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A run whose published images are off lists every bad one in one exit-2 error and sends
    no create."""
    base = f"{images.url}/wrongsize"
    path = write_manifest(MANIFEST.format(url=emulator.base_url, base=base))
    code, _, err = invoke("run", str(path), "--yes")
    assert code == 2, err
    assert "3 published images of 3 missing or stale" in err and "nothing was bought" in err
    assert err.count("bytes published") == 3
    for name in ("garden", "sunrise", "tower"):
        assert f"images/{name}.png -> {base}/images/{name}.png" in err
    assert emulator.creates() == 0


def test_publish_check_reports_every_image(
    emulator: ThreadedEmulator, images: ImageServer, write_manifest: WriteManifest
) -> None:
    """`publish-check --json` lists each image with its verdict; exit 2 when any is bad, 0 when
    all are good; it sends nothing to the API."""
    bad = write_manifest(MANIFEST.format(url=emulator.base_url, base=f"{images.url}/html"))
    code, out, err = invoke("publish-check", str(bad), "--json")
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and len(doc["images"]) == 3
    assert {i["problem"] for i in doc["images"]} == {"content type text/html, not an image"}
    assert "publish-check" in err
    good = write_manifest(MANIFEST.format(url=emulator.base_url, base=f"{images.url}/nohead"))
    code, out, _ = invoke("publish-check", str(good))
    assert code == 0 and out.endswith("3 images checked, 0 missing or stale\n")
    assert emulator.requests() == 0


def test_publish_check_without_published_images(write_manifest: WriteManifest) -> None:
    """With no http(s) image_base_url there is nothing to check: exit 0, said so."""
    path = write_manifest()
    code, _, err = invoke("publish-check", str(path))
    assert code == 0 and "nothing to check" in err


def test_judge_needs_a_size_to_compare() -> None:
    """An answer without a usable size (no Content-Length, `*` total) is a problem, not a
    pass: the check exists to catch stale uploads."""
    image = Published("images/a.png", "/a.png", "http://x/a.png", 10)
    assert publish.judge(image, 200, "image/png", None).problem == (
        "the server gives no size to compare"
    )
    assert publish._remote_size(206, {"Content-Range": "bytes 0-0/*"}) is None
    assert publish._remote_size(206, {"Content-Range": "bytes 0-0/10"}) == 10
    assert publish.judge(image, 206, "image/png; charset=binary", 10).ok
