"""The MP4 structure reader (run/mp4.py) and verify.py's fast path: it agrees with FFmpeg's
full probe on real files, refuses damaged ones before decoding, and leaves what it does not know
to FFmpeg (a fast path, never a narrower or a looser check)."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import pytest

from i2v_pipeline.emulator.render import render_video
from i2v_pipeline.run import mp4, verify

IMAGES = Path(__file__).resolve().parent.parent / "manifests" / "images"


def clip(folder: Path, name: str, size: tuple[int, int], seconds: int, audio: bool) -> Path:
    out = folder / name
    image = (IMAGES / "garden.png").read_bytes()
    render_video(image, out, size=size, seconds=seconds, fps=4, motion="zoom_in", audio=audio)
    return out


def grey_clip(path: Path, container: str, *, frames: int, **options: str) -> Path:
    """A 64x48 H.264 clip of grey frames at 4 fps in the given container."""
    with av.open(str(path), "w", format=container, options=options) as out:
        stream = out.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(b"\x80" * plane.buffer_size)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "landscape": clip(folder, "l.mp4", (160, 96), 2, audio=False),
        "portrait": clip(folder, "p.mp4", (96, 160), 3, audio=True),
    }


@pytest.mark.parametrize("name", ["landscape", "portrait"])
def test_fast_path_agrees_with_ffmpeg(clips: dict[str, Path], name: str) -> None:
    path = clips[name]
    with open(path, "rb") as f:
        movie, sample = mp4.read(f)
    assert movie.codec == "h264" and sample  # the fast path applies to these files
    fast = verify.probe(path, hint=".mp4")
    assert fast == verify._probe(path, "mp4")
    assert fast.audio is (name == "portrait")
    assert (fast.width, fast.height) == ((160, 96) if name == "landscape" else (96, 160))


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.9, 0.995])
def test_a_cut_file_is_refused_before_decoding(
    clips: dict[str, Path], tmp_path: Path, keep: float
) -> None:
    data = clips["portrait"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with open(cut, "rb") as f, pytest.raises(mp4.Broken):
        mp4.read(f)
    with pytest.raises(verify.VerifyError, match="does not decode"):
        verify.probe(cut, hint=".mp4")


def test_samples_outside_the_data_are_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    """A chunk offset pointing past the mdat (a spliced or doctored file) never passes."""
    data = bytearray(clips["landscape"].read_bytes())
    at = data.index(b"stco") + 4 + 4 + 4  # version/flags, entry count, then the first offset
    struct.pack_into(">I", data, at, len(data) - 10)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with open(bad, "rb") as f, pytest.raises(mp4.Broken, match="outside the file's data"):
        mp4.read(f)
    with pytest.raises(verify.VerifyError):
        verify.probe(bad, hint=".mp4")


def test_a_frame_that_does_not_decode_is_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    """The structure is intact but the first frame is garbage: the decoder says no."""
    path = clips["landscape"]
    with open(path, "rb") as f:
        movie, _ = mp4.read(f)
    offset, length = movie.first_sample
    data = bytearray(path.read_bytes())
    data[offset + 5 : offset + length] = b"\x55" * (length - 5)
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(verify.VerifyError, match="does not decode"):
        verify.probe(bad, hint=".mp4")


def test_what_it_does_not_know_goes_to_ffmpeg(tmp_path: Path) -> None:
    """An HTML error page named .mp4 is not an ISO file: Unsupported, and FFmpeg's probe
    refuses it as before. A file in another container (Matroska) still verifies."""
    page = tmp_path / "page.mp4"
    page.write_bytes(b"<html><body>expired</body></html>")
    with open(page, "rb") as f, pytest.raises(mp4.Unsupported):
        mp4.read(f)
    with pytest.raises(verify.VerifyError):
        verify.probe(page, hint=".mp4")

    mkv = grey_clip(tmp_path / "clip.mkv", "matroska", frames=4)
    named_mp4 = tmp_path / "really-mkv.mp4"
    named_mp4.write_bytes(mkv.read_bytes())
    info = verify.probe(named_mp4, hint=".mp4")  # not what its name says: probed as a whole
    assert (info.width, info.height) == (64, 48)


def test_fragmented_mp4_is_left_to_ffmpeg(tmp_path: Path) -> None:
    frag = grey_clip(tmp_path / "frag.mp4", "mp4", frames=8, movflags="frag_keyframe+empty_moov")
    with open(frag, "rb") as f, pytest.raises(mp4.Unsupported, match="fragmented"):
        mp4.read(f)
    info = verify.probe(frag, hint=".mp4")
    assert (info.width, info.height) == (64, 48)


def test_a_reused_decoder_checks_each_file_on_its_own(tmp_path: Path) -> None:
    """Files sharing a decoder configuration share a decoder: each is
    still judged by its own first frame, and a refused frame never poisons the next file."""
    image = (IMAGES / "tower.png").read_bytes()
    good = [tmp_path / f"g{i}.mp4" for i in range(3)]
    for i, path in enumerate(good):
        render_video(image, path, size=(96, 64), seconds=1 + i, fps=4, motion="pan", audio=False)
    with open(good[0], "rb") as f:
        movie, _ = mp4.read(f)
    data = bytearray(good[0].read_bytes())
    offset, length = movie.first_sample
    data[offset + 5 : offset + length] = b"\x55" * (length - 5)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    for path in (good[0], bad, good[1], bad, good[2]):
        if path == bad:
            with pytest.raises(verify.VerifyError):
                verify.probe(path, hint=".mp4")
            continue
        info = verify.probe(path, hint=".mp4")
        assert info == verify._probe(path, "mp4")
    assert verify.probe(good[2], hint=".mp4").duration == 3.0
    assert len(verify._decoders.cache) <= verify.DECODERS_KEPT


def test_a_first_picture_that_predicts_cannot_borrow_the_last_files(tmp_path: Path) -> None:
    """A decoder is reused without a flush after a file that starts with an IDR picture. A file
    whose first sample is a P picture (here: a good file's second frame, moved to the front)
    would decode against the previous file's picture left in that decoder; it is refused, as a
    fresh decoder refuses it."""
    image = (IMAGES / "tower.png").read_bytes()
    good = tmp_path / "good.mp4"
    render_video(image, good, size=(96, 64), seconds=2, fps=4, motion="pan", audio=False)
    with open(good, "rb") as f:
        movie, first = mp4.read(f)
    offset, length = movie.first_sample
    second = movie.video.sizes[1]
    assert len(movie.video.chunks) == 1  # one chunk: the second sample follows the first
    data = bytearray(good.read_bytes())
    moved = bytes(data[offset + length : offset + length + second])
    assert verify.starts_afresh("h264", movie.video.config, first)
    assert not verify.starts_afresh("h264", movie.video.config, moved)
    data[offset : offset + second] = moved
    at = data.index(b"stsz") + 4 + 4 + 4 + 4  # version/flags, uniform size, count: entry 1
    assert struct.unpack_from(">I", data, at) == (length,)
    struct.pack_into(">I", data, at, second)
    predicted = tmp_path / "predicted.mp4"
    predicted.write_bytes(bytes(data))
    for path in (good, predicted, good, predicted):
        if path == predicted:
            with pytest.raises(verify.VerifyError, match="damaged"):
                verify.probe(path, hint=".mp4")
        else:
            assert verify.probe(path, hint=".mp4") == verify._probe(path, "mp4")


def nal_units(width: int, *units: bytes) -> bytes:
    return b"".join(len(u).to_bytes(width, "big") + u for u in units)


@pytest.mark.parametrize(
    ("codec", "config", "sample", "afresh"),
    [
        ("h264", bytes([1, 100, 0, 31, 0xFF]), nal_units(4, b"\x09\xf0", b"\x65\x88"), True),
        ("h264", bytes([1, 100, 0, 31, 0xFF]), nal_units(4, b"\x06\x05", b"\x41\x9a"), False),
        ("h264", bytes([1, 100, 0, 31, 0xFD]), nal_units(2, b"\x67\x64", b"\x65\x88"), True),
        ("h264", bytes([1, 100, 0, 31]), nal_units(4, b"\x65\x88"), False),  # no length field
        ("h264", bytes([1, 100, 0, 31, 0xFF]), b"\x00\x00\x00\x09\x65\x88", False),  # cut
        ("h264", bytes([1, 100, 0, 31, 0xFF]), nal_units(4, b"\x06\x05"), False),  # no picture
        ("hevc", bytes(21) + b"\x0f", nal_units(4, b"\x40\x01", b"\x26\x01"), True),  # IDR
        ("hevc", bytes(21) + b"\x0f", nal_units(4, b"\x2a\x01"), False),  # CRA: keeps the past
        ("hevc", bytes(21) + b"\x0f", nal_units(4, b"\x02\x01"), False),  # a trailing picture
    ],
)
def test_which_first_pictures_start_afresh(
    codec: str, config: bytes, sample: bytes, afresh: bool
) -> None:
    assert verify.starts_afresh(codec, config, sample) is afresh


def test_hostile_structures_are_bounded(clips: dict[str, Path], tmp_path: Path) -> None:
    """Boxes nested without end are left to FFmpeg (which refuses them as it would any bad
    file); more tracks than a clip has are refused outright; never a crash or a runaway parse."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    deep = b""
    for _ in range(5000):
        deep = box(b"edts", deep)
    mvhd = box(b"mvhd", bytes(12) + struct.pack(">II", 1000, 1000) + bytes(80))
    nested = tmp_path / "nested.mp4"
    nested.write_bytes(box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", mvhd + box(b"trak", deep)))
    with open(nested, "rb") as f, pytest.raises(mp4.Unsupported, match="nested"):
        mp4.read(f)
    with pytest.raises(verify.VerifyError):
        verify.probe(nested, hint=".mp4")

    many = tmp_path / "tracks.mp4"
    many.write_bytes(box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", mvhd + box(b"trak", b"") * 40))
    with open(many, "rb") as f, pytest.raises(mp4.Broken, match="tracks"):
        mp4.read(f)  # refused here: FFmpeg would allocate for every one of them


def test_tables_longer_than_the_file_are_refused_before_ffmpeg(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A 10 kB file declaring 89 million samples is refused by the reader, never handed to
    FFmpeg (which would build an index of that many entries: over a GB)."""
    data = bytearray(clips["landscape"].read_bytes())
    at = data.index(b"stsz") + 4 + 4  # version/flags, then the uniform size and the count
    struct.pack_into(">II", data, at, 1, 89_000_000)
    bad = tmp_path / "claims.mp4"
    bad.write_bytes(bytes(data))
    with open(bad, "rb") as f, pytest.raises(mp4.Broken, match="more than the file's data"):
        mp4.read(f)


def test_a_concealed_frame_is_not_taken_for_a_good_one(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """Random slice data behind intact NAL headers: FFmpeg would conceal the damage and hand
    back a picture; the check asks it to fail instead, and looks at the frame's flag."""
    import random

    path = clips["landscape"]
    with open(path, "rb") as f:
        movie, _ = mp4.read(f)
    offset, length = movie.first_sample
    data = bytearray(path.read_bytes())
    noise = random.Random(7)
    at = offset
    while at + 4 < offset + length:  # each NAL: keep its length and header byte, scramble the rest
        (size,) = struct.unpack_from(">I", data, at)
        body = range(at + 6, min(at + 4 + size, offset + length))
        for i in body:
            data[i] = noise.randrange(256)
        at += 4 + size
    bad = tmp_path / "concealed.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(verify.VerifyError, match="does not decode"):
        verify.probe(bad, hint=".mp4")


def test_bytes_after_the_movie_are_tolerated(clips: dict[str, Path], tmp_path: Path) -> None:
    """Junk appended after the boxes (FFmpeg plays such a file) is no truncation."""
    padded = tmp_path / "padded.mp4"
    padded.write_bytes(clips["landscape"].read_bytes() + bytes(range(256)) * 20)
    assert verify.probe(padded, hint=".mp4") == verify.probe(clips["landscape"], hint=".mp4")


def test_a_picture_is_not_a_video_and_a_cut_file_says_how_long_it_is(tmp_path: Path) -> None:
    """Other containers go to FFmpeg's whole probe: a still image (a server's placeholder) is
    refused, and a cut Matroska file's duration is what it holds, not what its header says."""
    from PIL import Image

    still = tmp_path / "placeholder.mp4"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(still, format="PNG")
    with pytest.raises(verify.VerifyError, match="single picture"):
        verify.probe(still, hint=".mp4")

    mkv = tmp_path / "clip.mkv"
    with av.open(str(mkv), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "2"}
        for n in range(40):  # 10 s
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([n * 6 % 256]) * plane.buffer_size)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    whole = verify.probe(mkv, hint=".mkv")
    assert whole.duration == pytest.approx(10, abs=0.3)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 2 // 3])
    info = verify.probe(cut, hint=".mp4")
    assert 1 < info.duration < 9
    assert verify.mismatch(info, seconds=10, resolution=None) is not None
