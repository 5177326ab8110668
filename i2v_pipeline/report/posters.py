"""Still images for the gallery: a poster frame from each video (PyAV) and a thumbnail of each
input image (Pillow), small JPEGs named by the source's content hash, so a rerun of the report
reuses them and a thousand cards of one video share one file."""

from __future__ import annotations

import os
from pathlib import Path

import av
from PIL import Image

POSTER_WIDTH = 480
THUMB_WIDTH = 160
POSTER_AT = 1.0
"""Seconds into the video for the poster (or its middle, if shorter): the first frame of an
image-to-video result is the input image itself, which the card already shows."""


def _save(image: Image.Image, target: Path, width: int) -> None:
    image = image.convert("RGB")
    image.thumbnail((width, width * 4))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    image.save(tmp, "JPEG", quality=80)
    os.replace(tmp, target)


def poster(video: Path, key: str, folder: Path) -> Path | None:
    """The poster frame of video as folder/KEY.jpg (made once), or None if it cannot be read."""
    target = folder / f"{key[:24]}.jpg"
    if target.exists():
        return target
    try:
        frame = _frame_near(video, POSTER_AT)
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        return None
    if frame is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    _save(frame, target, POSTER_WIDTH)
    return target


def _frame_near(video: Path, seconds: float) -> Image.Image | None:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        duration = float(container.duration / av.time_base) if container.duration else None
        at = min(seconds, duration / 2) if duration else 0.0
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.time is not None and frame.time >= at:
                break
        if last is None:
            return None
        image: Image.Image = last.to_image()  # type: ignore[no-untyped-call]
        return image


def thumbnail(image: Path, key: str, folder: Path) -> Path | None:
    """A small copy of an input image as folder/img-KEY.jpg, or None if it cannot be read."""
    target = folder / f"img-{key[:24]}.jpg"
    if target.exists():
        return target
    try:
        with Image.open(image) as im:
            im.load()
            folder.mkdir(parents=True, exist_ok=True)
            _save(im, target, THUMB_WIDTH)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return target
