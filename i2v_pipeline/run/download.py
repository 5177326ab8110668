"""Downloads: streamed to a temp file in the target folder, hashed on the fly, verified, renamed.

A result file is never half-written under its real name: a crash leaves only a `.part` file,
which the next download replaces.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio

from ..errors import DownloadError, ExpiredResultError
from . import verify as media

CHUNK = 1 << 16


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    bytes: int


def _part(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.part")


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    target: Path,
    *,
    seconds: float | None,
    resolution: str | None,
    timeout: float = 300.0,
) -> Downloaded:
    """Download url to target atomically. ExpiredResultError on 403/404 (re-query the result)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = _part(target)
    digest = hashlib.sha256()
    size = 0
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status in (403, 404):
                raise ExpiredResultError(f"result URL answered HTTP {resp.status} (expired?)")
            if resp.status != 200:
                raise DownloadError(f"result URL answered HTTP {resp.status}")
            expected = resp.content_length
            with open(part, "wb") as f:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
        if expected is not None and size != expected:
            raise DownloadError(f"got {size} bytes of {expected}")
        await anyio.to_thread.run_sync(lambda: _seal(part, target, seconds, resolution))
    except media.VerifyError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"the downloaded video is bad: {exc}") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"download failed: {type(exc).__name__}: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Downloaded(digest.hexdigest(), size)


def _seal(part: Path, target: Path, seconds: float | None, resolution: str | None) -> None:
    """Off the event loop: make the bytes durable, check the video, rename it into place."""
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    media.verify(part, seconds=seconds, resolution=resolution)
    os.replace(part, target)


def copy_into_place(source: Path, target: Path) -> Downloaded:
    """For a relocated output: copy (never move: the old path may be another job's), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = _part(target)
    shutil.copyfile(source, part)
    digest = hashlib.sha256()
    with open(part, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    os.replace(part, target)
    return Downloaded(digest.hexdigest(), target.stat().st_size)
