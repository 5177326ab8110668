"""The structure of an MP4/MOV file (ISO base media), read without FFmpeg: what verify.py needs
to check a download in a fraction of what opening it with PyAV costs.

`read` walks the boxes once: the movie's duration (mvhd), each track's kind (hdlr), and for the
first video track its codec, frame size, decoder configuration (avcC/hvcC) and sample table.
Every sample of every track must lie inside the file and inside an `mdat` box, so a truncated or
spliced file is refused here, before anything is decoded. Anything this reader does not know
(fragmented files, other codecs, odd layouts) raises `Unsupported`: the caller then falls back on
FFmpeg's full probe, so this is a fast path, never a narrower check.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from itertools import accumulate
from typing import BinaryIO

CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}
"""Sample entry types we can hand to a decoder with their configuration box."""
CONFIG = {b"avc1": b"avcC", b"avc3": b"avcC", b"hvc1": b"hvcC", b"hev1": b"hvcC"}
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}
FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}
"""What an MP4 or QuickTime file starts with; anything else is left to FFmpeg's probe."""
MAX_TOP_BOXES = 64
MAX_MOOV = 64 << 20
"""A movie header larger than this is left to FFmpeg (ours are a few kB)."""
MAX_SAMPLES = 1_000_000
"""A sample table longer than this (an hour at 60 fps is 216,000) is left to FFmpeg."""
MAX_TRACKS = 16
MAX_DEPTH = 8
"""Boxes nest 5 deep in a track (trak/mdia/minf/stbl/stsd); deeper is not a file we read."""


class Unsupported(Exception):
    """Not a layout this reader checks (the caller probes with FFmpeg instead)."""


class Broken(Exception):
    """The file is an MP4 whose structure is damaged: truncated, or a sample outside the data."""


@dataclass
class Track:
    kind: bytes = b""
    """hdlr's handler type: b"vide", b"soun", ..."""
    entry: bytes = b""
    """The first sample description's type (b"avc1", ...)."""
    width: int = 0
    height: int = 0
    config: bytes = b""
    """The decoder configuration (the avcC/hvcC box's payload: FFmpeg's extradata)."""
    sizes: tuple[int, ...] = ()
    chunks: tuple[int, ...] = ()
    runs: tuple[tuple[int, int], ...] = ()
    """stsc: (first chunk, 1-based; samples per chunk)."""
    scale: int = 0
    """mdhd: the track's time scale (ticks a second)."""
    ticks: int = 0
    length: int = 0
    """stts: how many samples it times, and their total duration in ticks."""


@dataclass(frozen=True)
class Movie:
    duration: float
    """Seconds the video track's samples cover (its timing table, not a header's claim)."""
    video: Track
    audio: bool
    first_sample: tuple[int, int]
    """(offset, size) of the video track's first sample: the frame verify.py decodes."""

    @property
    def codec(self) -> str:
        return CODECS[self.video.entry]


def read(f: BinaryIO) -> tuple[Movie, bytes]:
    """The movie in the open file f and its first video sample's bytes (the frame to decode).
    Broken or Unsupported, never another exception for what the file holds."""
    try:
        movie = _read(f)
        offset, length = movie.first_sample
        f.seek(offset)
        return movie, f.read(length)
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise Broken(f"damaged MP4 structure ({exc})") from None


def _boxes(buf: memoryview, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes between start and end: (type, payload start, payload end)."""
    out = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, at)
        head = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", buf, at + 8)
            head = 16
        elif size == 0:
            size = end - at
        if size < head or at + size > end:
            raise Broken(f"box {kind!r} at byte {at} runs past its parent (truncated?)")
        out.append((kind, at + head, at + size))
        at += size
    if at != end:
        raise Broken(f"{end - at} stray bytes at byte {at}")
    return out


def _top(f: BinaryIO) -> list[tuple[bytes, int, int]]:
    """The file's top-level boxes from their headers alone (an mdat is never read)."""
    end = f.seek(0, os.SEEK_END)
    out: list[tuple[bytes, int, int]] = []
    at = 0
    while at < end:
        f.seek(at)
        head = f.read(16)
        if len(head) < 8:
            break  # a few trailing bytes: judged by what the boxes before them hold
        size, kind = struct.unpack_from(">I4s", head)
        if not at and kind not in FIRST_BOXES:
            raise Unsupported("not an ISO base media file")
        skip = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", head, 8)
            skip = 16
        elif size == 0:
            size = end - at
        if size < skip or at + size > end:
            if kind in (b"moov", b"mdat") or not out:
                raise Broken(
                    f"the {kind.decode('latin-1')!r} box at byte {at} runs past the end "
                    "of the file (truncated?)"
                )
            break  # bytes after the movie that are no box of it (FFmpeg ignores them too)
        out.append((kind, at + skip, at + size))
        if len(out) > MAX_TOP_BOXES:
            raise Unsupported("a great many top-level boxes")
        at += size
    return out


def _read(f: BinaryIO) -> Movie:
    top = _top(f)
    kinds = [k for k, _, _ in top]
    if not top:
        raise Broken("an empty file")
    if b"moof" in kinds:
        raise Unsupported("fragmented MP4")
    if kinds.count(b"moov") != 1:
        raise Broken("no movie header (moov)") if b"moov" not in kinds else Unsupported("moovs")
    data = [(s, e) for k, s, e in top if k == b"mdat"]
    start, end = next((s, e) for k, s, e in top if k == b"moov")
    if end - start > MAX_MOOV:
        raise Unsupported("a very large movie header")
    f.seek(start)
    room = sum(e - s for s, e in data)
    _, tracks = _movie(memoryview(f.read(end - start)), 0, end - start, room)
    video = next((t for t in tracks if t.kind == b"vide"), None)
    if video is None:
        raise Broken("no video track")
    if video.entry not in CODECS:
        raise Unsupported(f"codec {video.entry!r}")
    if not video.config or not video.sizes:
        raise Broken("the video track has no decoder configuration or no samples")
    for t in tracks:
        _check_samples(t, data)
    if video.ticks != len(video.sizes):
        raise Broken("the video track's timing and sample tables disagree")
    if not video.scale:
        raise Broken("the video track has no time scale")
    first = (video.chunks[0], video.sizes[0])
    seconds = video.length / video.scale  # what its samples cover, not what a header claims
    return Movie(seconds, video, any(t.kind == b"soun" for t in tracks), first)


def _movie(buf: memoryview, start: int, end: int, room: int) -> tuple[float, list[Track]]:
    """The movie header's duration and the tracks; room is the bytes of sample data the file
    holds (no table may list more samples than that)."""
    duration: float | None = None
    tracks: list[Track] = []
    for kind, s, e in _boxes(buf, start, end):
        if kind == b"mvhd":
            version = buf[s]
            if version == 1:
                scale, length = struct.unpack_from(">IQ", buf, s + 20)
            else:
                scale, length = struct.unpack_from(">II", buf, s + 12)
            if not scale:
                raise Broken("the movie header has no time scale")
            duration = length / scale
        elif kind == b"mvex":
            raise Unsupported("fragmented MP4")
        elif kind == b"trak":
            if len(tracks) >= MAX_TRACKS:
                raise Broken(f"more than {MAX_TRACKS} tracks: not a video of this API")
            track = Track()
            _walk(buf, s, e, track, room)
            tracks.append(track)
    if duration is None:
        raise Broken("no movie header (mvhd)")
    return duration, tracks


def _counted(count: int, room: int, what: str) -> int:
    """A table's entry count, refused when the file could not hold that many samples (each
    is a byte at least): a 66 kB file declaring 89 million samples is never handed on."""
    if count > room:
        raise Broken(f"{what} lists {count:,} entries, more than the file's data could hold")
    if count > MAX_SAMPLES:
        raise Unsupported(f"a very long {what}")
    return count


def _walk(buf: memoryview, start: int, end: int, t: Track, room: int, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise Unsupported("boxes nested deeper than a track's")
    for kind, s, e in _boxes(buf, start, end):
        if kind in CONTAINERS:
            _walk(buf, s, e, t, room, depth + 1)
        elif kind == b"mdhd":
            if buf[s] == 1:
                (t.scale,) = struct.unpack_from(">I", buf, s + 20)
            else:
                (t.scale,) = struct.unpack_from(">I", buf, s + 12)
        elif kind == b"stts":
            count = _counted(struct.unpack_from(">I", buf, s + 4)[0], room, "a timing table")
            flat = struct.unpack_from(f">{2 * count}I", buf, s + 8)
            t.ticks = _counted(sum(flat[0::2]), room, "a timing table")
            t.length = sum(n * delta for n, delta in zip(flat[0::2], flat[1::2], strict=True))
        elif kind == b"hdlr":
            t.kind = bytes(buf[s + 8 : s + 12])
        elif kind == b"stsd":
            _sample_entry(buf, s, e, t)
        elif kind == b"stsz":
            fixed, count = struct.unpack_from(">II", buf, s + 4)
            _counted(count * max(fixed, 1), room, "a sample size table")
            if fixed:
                t.sizes = (fixed,) * count
            else:
                t.sizes = struct.unpack_from(f">{count}I", buf, s + 12)
        elif kind in (b"stco", b"co64"):
            count = _counted(struct.unpack_from(">I", buf, s + 4)[0], room, "a chunk table")
            t.chunks = struct.unpack_from(f">{count}{'I' if kind == b'stco' else 'Q'}", buf, s + 8)
        elif kind == b"stsc":
            count = _counted(
                struct.unpack_from(">I", buf, s + 4)[0], room, "a sample-to-chunk table"
            )
            flat = struct.unpack_from(f">{3 * count}I", buf, s + 8)
            t.runs = tuple(zip(flat[0::3], flat[1::3], strict=True))


def _sample_entry(buf: memoryview, start: int, end: int, t: Track) -> None:
    (count,) = struct.unpack_from(">I", buf, start + 4)
    if count < 1:
        raise Broken("a track with no sample description")
    entries = _boxes_prefix(buf, start + 8, end)
    kind, s, e = entries[0]
    t.entry = kind
    if kind in CODECS:
        # VisualSampleEntry: 6 reserved, data_reference_index, 16 predefined/reserved bytes,
        # width, height, ..., then its own boxes from byte 78 of the payload
        t.width, t.height = struct.unpack_from(">HH", buf, s + 24)
        for child, cs, ce in _boxes(buf, s + 78, e):
            if child == CONFIG[kind]:
                t.config = bytes(buf[cs:ce])


def _boxes_prefix(buf: memoryview, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """stsd's entries: boxes from start, where the entry count (not end) says where they stop."""
    size, kind = struct.unpack_from(">I4s", buf, start)
    if size < 8 or start + size > end:
        raise Broken("a sample description runs past its box")
    return [(kind, start + 8, start + size)]


def _check_samples(t: Track, data: list[tuple[int, int]]) -> None:
    """Every sample of t lies inside one mdat: a cut or spliced file never passes."""
    if not t.sizes:
        return
    if not t.chunks or not t.runs or t.runs[0][0] != 1:
        raise Broken("a track's sample table is incomplete")
    per_chunk = _samples_per_chunk(t.runs, len(t.chunks))
    if sum(per_chunk) != len(t.sizes):
        raise Broken("a track's sample tables disagree on how many samples it has")
    ends = (0, *accumulate(t.sizes))
    spans = sorted(data)
    starts = [s for s, _ in spans]
    at = 0
    for offset, n in zip(t.chunks, per_chunk, strict=True):
        length = ends[at + n] - ends[at]
        at += n
        k = bisect.bisect_right(starts, offset) - 1  # the mdat that starts last before it
        if n and (k < 0 or offset + length > spans[k][1]):
            raise Broken(f"samples at byte {offset} lie outside the file's data (truncated?)")


def _samples_per_chunk(runs: tuple[tuple[int, int], ...], chunks: int) -> list[int]:
    out: list[int] = []
    for k, (first, per) in enumerate(runs):
        last = runs[k + 1][0] - 1 if k + 1 < len(runs) else chunks
        if first < 1 or last < first - 1 or last > chunks:
            raise Broken("a track's sample-to-chunk table is out of order")
        out.extend([per] * (last - first + 1))
    if len(out) != chunks:
        raise Broken("a track's sample-to-chunk table does not cover its chunks")
    return out
