"""Checking a downloaded video: it decodes (a hard check), and its duration and frame size match
the request (a soft one: see `mismatch`).

The frame follows the input image's aspect ratio and the resolution names the short side (a 720p
job on a portrait image comes back 720x1080), so the check is on the short side, not 1280x720.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

SHORT_SIDE = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}
DURATION_TOLERANCE = 0.6
"""Seconds; the real service returned 5.063 s for a 5 s job."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration: float
    audio: bool = False
    """The file has an audio stream (what the audio stage bought)."""


class VerifyError(Exception):
    pass


DEMUXERS = {".mp4": "mp4", ".mov": "mov", ".m4v": "mp4"}
"""A file name's demuxer: named, FFmpeg skips probing every format it knows (about a sixth of
a probe's CPU). A file that is not what its name says is probed as before."""


def probe(path: Path, *, hint: str | None = None) -> VideoInfo:
    """Open, read the video stream's size and duration, and decode the first frame; hint is
    the name's suffix (".mp4") the file is expected to have, to skip format probing."""
    demuxer = DEMUXERS.get((hint or "").lower())
    if demuxer is not None:
        try:
            return _probe(path, demuxer)
        except VerifyError:
            pass  # not what its name says: probe the format as for an unnamed file
    return _probe(path, None)


def _probe(path: Path, demuxer: str | None) -> VideoInfo:
    try:
        with av.open(str(path), format=demuxer) as container:
            if not container.streams.video:
                raise VerifyError("no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = (
                1  # one frame: a thread pool costs more than it saves
            )
            frame = next(container.decode(stream), None)
            if frame is None:
                raise VerifyError("no frame decodes")
            duration = (container.duration or 0) / 1_000_000
            return VideoInfo(
                stream.codec_context.width,
                stream.codec_context.height,
                duration,
                audio=bool(container.streams.audio),
            )
    except (av.FFmpegError, OSError, StopIteration) as exc:
        raise VerifyError(f"does not decode as a video ({type(exc).__name__}: {exc})") from None


def mismatch(info: VideoInfo, *, seconds: float | None, resolution: str | None) -> str | None:
    """How a decodable video differs from the request (duration, short side), or None.

    A soft check: the API documents neither the exact duration nor the frame size, so a paid
    video that differs is kept and the difference recorded (unless `verify: strict`)."""
    if seconds and abs(info.duration - seconds) > max(DURATION_TOLERANCE, seconds * 0.1):
        return f"lasts {info.duration:.2f} s, expected {seconds} s"
    short = SHORT_SIDE.get(str(resolution))
    if short and min(info.width, info.height) != short:
        return f"frame is {info.width}x{info.height}, expected a {short}p short side"
    return None
