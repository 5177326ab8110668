"""Published local images: before anything is bought, each local image's URL under
`provider.image_base_url` must answer, with an image content type and the local file's size.

A video made from a missing or stale image is paid for either way (AKOOL fails it, or renders
the old picture), so `run` checks first and refuses with one list of every bad image;
`i2v publish-check M` runs only this check. HEAD first; a server that refuses HEAD (403, 405,
501: some object stores and CDNs) gets a ranged GET of one byte, whose Content-Range carries the
total size. No credentials are sent: published images are public.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio

from ..errors import ConfigError
from ..model import ImageRef, JobSpec
from ..spec.campaign import Campaign
from ..text import plural
from .session import image_url_for

CONCURRENT = 8
TIMEOUT = 15.0
"""Seconds one image's check may take in all (redirects and the ranged GET included)."""
HEAD_REFUSED = (403, 405, 501)
MAX_SHOWN = 20


@dataclass(frozen=True)
class Published:
    """A local image and the URL the API will be sent for it."""

    display: str
    path: str
    url: str
    size: int


@dataclass(frozen=True)
class Finding:
    """What the published URL of one image answered."""

    image: Published
    problem: str | None = None
    status: int | None = None
    content_type: str | None = None
    remote_size: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        """One image in `publish-check --json`."""
        return {
            "image": self.image.display,
            "url": self.image.url,
            "ok": self.ok,
            "problem": self.problem,
            "status": self.status,
            "content_type": self.content_type,
            "bytes": self.remote_size,
            "local_bytes": self.image.size,
        }


def applies(campaign: Campaign) -> bool:
    """True when local images go to the API as URLs under an http(s) image_base_url."""
    base = campaign.provider.image_base_url or ""
    return not campaign.provider.is_emulator and base.startswith(("http://", "https://"))


def published_images(campaign: Campaign, specs: Iterable[JobSpec]) -> list[Published]:
    """Every distinct local image (first and last frames) of specs, with its published URL."""
    to_url = image_url_for(campaign, emulator=False)
    seen: dict[str, Published] = {}
    for spec in specs:
        for ref in (spec.image, spec.last_frame):
            if ref is None or ref.kind != "path":
                continue
            url = to_url(ref)
            if url not in seen:
                seen[url] = Published(ref.display, ref.value, url, _size(ref))
    return list(seen.values())


def _size(ref: ImageRef) -> int:
    try:
        return os.stat(ref.value).st_size
    except OSError:
        return -1  # the manifest's own check reports a missing local file


async def check(
    session: aiohttp.ClientSession,
    images: Sequence[Published],
    *,
    concurrent: int = CONCURRENT,
    timeout: float = TIMEOUT,
) -> list[Finding]:
    """One finding per image, in order; at most `concurrent` requests at a time."""
    limiter = anyio.CapacityLimiter(concurrent)
    found: list[Finding | None] = [None] * len(images)

    async def one(n: int) -> None:
        async with limiter:
            found[n] = await _check_one(session, images[n], timeout)

    async with anyio.create_task_group() as tg:
        for n in range(len(images)):
            tg.start_soon(one, n)
    return [f for f in found if f is not None]


async def _check_one(session: aiohttp.ClientSession, image: Published, timeout: float) -> Finding:
    try:
        with anyio.fail_after(timeout):
            return await _ask(session, image)
    except TimeoutError:
        return Finding(image, f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return Finding(image, f"cannot fetch it: {type(exc).__name__}: {exc}")


async def _ask(session: aiohttp.ClientSession, image: Published) -> Finding:
    async with session.head(image.url, allow_redirects=True) as resp:
        status, headers = resp.status, resp.headers
    if status in HEAD_REFUSED:
        ranged = {"Range": "bytes=0-0"}
        async with session.get(image.url, headers=ranged, allow_redirects=True) as resp:
            status, headers = resp.status, resp.headers
    return judge(image, status, headers.get("Content-Type"), _remote_size(status, headers))


def _remote_size(status: int, headers: Any) -> int | None:
    """The full size: Content-Range's total on a 206, else Content-Length."""
    if status == 206:
        total = str(headers.get("Content-Range", "")).rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = str(headers.get("Content-Length", ""))
    return int(length) if length.isdigit() else None


def judge(image: Published, status: int, content_type: str | None, size: int | None) -> Finding:
    """The finding for an answer: reachable, an image, the local file's size."""
    kind = (content_type or "").split(";")[0].strip().lower()
    problem: str | None = None
    if status not in (200, 206):
        problem = f"HTTP {status}"
    elif not kind.startswith("image/"):
        problem = f"content type {kind or 'missing'}, not an image"
    elif size is None:
        problem = "the server gives no size to compare"
    elif size != image.size:
        problem = f"{size:,} bytes published, {image.size:,} bytes locally (stale upload?)"
    return Finding(image, problem, status, content_type, size)


def refusal(campaign: Campaign, findings: Sequence[Finding]) -> ConfigError | None:
    """One error listing every missing or stale image; None when all are published."""
    bad = [f for f in findings if not f.ok]
    if not bad:
        return None
    lines = [f"  - {f.image.display} -> {f.image.url}: {f.problem}" for f in bad[:MAX_SHOWN]]
    if len(bad) > MAX_SHOWN:
        lines.append(f"  … and {len(bad) - MAX_SHOWN} more")
    manifest = campaign.manifest.path
    return ConfigError(
        f"{plural(len(bad), 'published image')} of {len(findings)} missing or stale under "
        f"provider.image_base_url; nothing was bought:\n" + "\n".join(lines),
        where=str(manifest),
        hint=(
            "upload the local files (same bytes) under image_base_url, then check again with "
            f"`i2v publish-check {manifest.name}`"
        ),
    )


async def check_campaign(
    campaign: Campaign, specs: Iterable[JobSpec], *, timeout: float = TIMEOUT
) -> list[Finding]:
    """Check the published URLs of specs' local images in a session of its own."""
    images = published_images(campaign, specs)
    if not images:
        return []
    async with aiohttp.ClientSession() as session:
        return await check(session, images, timeout=min(timeout, campaign.limits.request_timeout))
