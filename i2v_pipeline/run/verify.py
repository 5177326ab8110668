"""Checking a downloaded video: it decodes (a hard check), and its duration and frame size match
the request (a soft one: see `mismatch`).

The frame follows the input image's aspect ratio and the resolution names the short side (a 720p
job on a portrait image comes back 720x1080), so the check is on the short side, not 1280x720.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import av
from av.video.codeccontext import VideoCodecContext

from . import mp4

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


def probe(path: Path, *, hint: str | None = None, opened: BinaryIO | None = None) -> VideoInfo:
    """Read the video stream's size and duration, and decode its first frame; hint is the
    name's suffix (".mp4") the file is expected to have, opened the file already open for
    reading (the download that wrote it), so the fast path opens nothing again.

    MP4/MOV files we can read take the fast path (mp4.py checks the structure, one bare
    decoder decodes the first frame: about a third of FFmpeg's probe); any other file, or one
    that path does not know, is probed by FFmpeg as a whole."""
    demuxer = DEMUXERS.get((hint or "").lower())
    if demuxer is not None:
        try:
            return _fast(path, opened)
        except mp4.Unsupported:
            pass
        except mp4.Broken as exc:
            raise VerifyError(f"does not decode as a video ({exc})") from None
        try:
            return _probe(path, demuxer)
        except VerifyError:
            pass  # not what its name says: probe the format as for an unnamed file
    return _probe(path, None)


def _fast(path: Path, opened: BinaryIO | None) -> VideoInfo:
    if opened is not None:
        movie, sample = mp4.read(opened)
    else:
        with open(path, "rb") as f:
            movie, sample = mp4.read(f)
    key = (movie.codec, movie.video.config)
    decoder = _decoder(key)
    try:
        if not starts_afresh(movie.codec, movie.video.config, sample):
            decoder.flush_buffers()  # it could predict from the last file's pictures: none left
        frames = decoder.decode(av.Packet(sample))  # low delay: the picture comes at once
        if not frames:  # held back all the same (a field of a pair): drain, then start afresh
            frames = decoder.decode(None)
            decoder.flush_buffers()
    except av.FFmpegError as exc:
        _decoders.cache.pop(key, None)  # never reuse a decoder that refused its input
        raise VerifyError(f"does not decode as a video ({_said(exc)})") from None
    if not frames or frames[0].is_corrupt:
        _decoders.cache.pop(key, None)  # nor one that concealed damage
        raise VerifyError("does not decode as a video (its first frame is damaged)")
    frame = frames[0]
    return VideoInfo(frame.width, frame.height, movie.duration, audio=movie.audio)


class _Decoders(threading.local):
    """Each thread's open decoders, by (codec, decoder configuration): the videos of one
    campaign share a handful, and a decoder reused skips allocating and clearing its frame
    buffers and tables, most of what decoding one frame costs. It is not flushed before a file
    whose first picture starts the stream afresh (an IDR resets the references); any other
    first picture is decoded after a flush, as by a fresh decoder (starts_afresh)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, bytes], VideoCodecContext] = {}


_decoders = _Decoders()
DECODERS_KEPT = 8
"""Per thread; past this the oldest is dropped."""


def _decoder(key: tuple[str, bytes]) -> VideoCodecContext:
    cache = _decoders.cache
    decoder = cache.get(key)
    if decoder is None:
        decoder = cast(VideoCodecContext, av.CodecContext.create(key[0], "r"))
        decoder.extradata = key[1]
        decoder.thread_count = 1  # one frame: a thread pool costs more than it saves
        # an error in the frame fails, not concealed; low_delay hands the picture out as soon
        # as it is decoded, so no drain is needed, and no flush: FFmpeg's h264 flush frees the
        # decoder's tables, so each file would allocate and clear them again (twice the CPU)
        decoder.options = {"err_detect": "explode", "flags": "+low_delay"}
        if len(cache) >= DECODERS_KEPT:
            del cache[next(iter(cache))]
        cache[key] = decoder
    return decoder


H264_IDR = 5
HEVC_FRESH = range(16, 21)
"""NAL unit types of a picture that starts the stream afresh (H.264 IDR; HEVC BLA and IDR). A
CRA picture does not: met mid-stream it keeps the pictures before it, so it counts as unsure."""


def starts_afresh(codec: str, config: bytes, sample: bytes) -> bool:
    """The sample's first picture starts the stream afresh: it decodes from nothing before it,
    so a reused decoder cannot borrow the previous file's pictures. False when unsure (the
    caller then flushes the decoder first). sample holds length-prefixed NAL units, their
    length field as wide as the configuration says (avcC byte 4, hvcC byte 21)."""
    hevc = codec == "hevc"
    at = 21 if hevc else 4
    if len(config) <= at:
        return False
    width, pos = (config[at] & 3) + 1, 0
    while pos + width < len(sample):
        size = int.from_bytes(sample[pos : pos + width], "big")
        pos += width
        if size == 0 or pos + size > len(sample):
            return False
        kind = (sample[pos] >> 1) & 0x3F if hevc else sample[pos] & 0x1F
        if hevc and kind < 32:  # the first picture's slice: VCL types are 0-31
            return kind in HEVC_FRESH
        if not hevc and 1 <= kind <= 5:  # VCL types are 1-5
            return kind == H264_IDR
        pos += size
    return False


def _probe(path: Path, demuxer: str | None) -> VideoInfo:
    """FFmpeg's whole probe: decode the first frame, then read every packet of the video
    stream to its end, so the duration is what the file holds (a cut Matroska file still
    declares its full length in its header) and a single picture is not taken for a video."""
    try:
        with av.open(str(path), format=demuxer) as container:
            if not container.streams.video:
                raise VerifyError("no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # one frame: a pool costs more than it saves
            stream.codec_context.options = {"err_detect": "explode"}
            frame = next(container.decode(stream), None)
            if frame is None or frame.is_corrupt:
                raise VerifyError("no frame decodes")
            container.seek(0)
            packets, start, end = 0, None, 0
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
                    if packet.pts is not None:
                        start = packet.pts if start is None else min(start, packet.pts)
                        end = max(end, packet.pts + (packet.duration or 0))
            if packets < 2:
                raise VerifyError("a single picture, not a video")
            base = stream.time_base
            if base and start is not None and end > start:
                duration = float((end - start) * base)
            else:
                duration = (container.duration or 0) / 1e6
            return VideoInfo(
                stream.codec_context.width,
                stream.codec_context.height,
                duration,
                audio=bool(container.streams.audio),
            )
    except (av.FFmpegError, OSError, StopIteration, MemoryError) as exc:
        raise VerifyError(f"does not decode as a video ({_said(exc)})") from None


def _said(exc: BaseException) -> str:
    """What FFmpeg said, without the file's (temporary) path."""
    said = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(said).split(": '/", 1)[0]


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
