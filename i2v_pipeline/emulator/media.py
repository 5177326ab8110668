"""Input images in, rendered result videos out, cached by content.

Images come from file:// URLs (emulator only: how the quickstart's local files reach it) or
http(s) URLs on loopback; anything else cannot be fetched here (no network), so a deterministic
placeholder stands in. Renders run in a worker thread, one per cache key at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import aiohttp
from PIL import Image

from .account import Job
from .config import EmulatorConfig
from .render import cache_key, frame_size, pick_motion, placeholder_image, render_video

MAX_IMAGES = 256


def default_cache_dir() -> Path:
    """Where rendered videos are cached between runs (XDG cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "i2v" / "emulator-renders"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Media:
    """Fetches input images and renders (or reuses) a real video for each job."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.cache_dir = config.cache_dir or default_cache_dir()
        self._images: dict[str, tuple[bytes, str, tuple[int, int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.renders = 0

    async def image(self, url: str) -> tuple[bytes, str, tuple[int, int]]:
        """(bytes, sha256, (width, height)) of the image at url."""
        cached = self._images.get(url)
        if cached:
            return cached
        data = await self._fetch(url)
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
        except (OSError, ValueError):
            data = placeholder_image(url)
            size = (640, 360)
        entry = (data, hashlib.sha256(data).hexdigest(), size)
        if len(self._images) >= MAX_IMAGES:
            self._images.pop(next(iter(self._images)))
        self._images[url] = entry
        return entry

    async def _fetch(self, url: str) -> bytes:
        parsed = urlparse(url)
        if parsed.scheme == "file" and self.config.allow_file_urls:
            try:
                return await asyncio.to_thread(Path(unquote(parsed.path)).read_bytes)
            except OSError:
                return placeholder_image(url)
        if parsed.scheme in ("http", "https") and _is_loopback(parsed.hostname or ""):
            try:
                async with aiohttp.ClientSession() as s, s.get(url) as r:
                    if r.status == 200:
                        return await r.read()
            except aiohttp.ClientError:
                pass
        return placeholder_image(url)

    async def video_for(self, job: Job) -> Path:
        """The mp4 for job: rendered once per image, motion, size and length, then cached."""
        f = job.fields
        data, sha, (w, h) = await self.image(str(f.get("image_url")))
        size = frame_size(w, h, f.get("resolution"), self.config.scale)
        motion = pick_motion(str(f.get("effect_code") or f.get("prompt") or ""))
        audio = f.get("audio_type") in (1, 2) or bool(f.get("generate_audio"))
        key = cache_key(sha, motion, size, job.video_length, self.config.fps, audio)
        path = self.cache_dir / f"{key}.mp4"
        if path.exists():
            return path
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not path.exists():
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                await asyncio.to_thread(
                    render_video,
                    data,
                    path,
                    size=size,
                    seconds=job.video_length,
                    fps=self.config.fps,
                    motion=motion,
                    audio=audio,
                )
                self.renders += 1
        return path
