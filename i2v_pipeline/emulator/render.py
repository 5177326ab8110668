"""Real MP4s: the input image with a camera move, H.264 yuv420p, optional AAC tone.

Like the real service, the frame keeps the image's aspect ratio with the resolution as the short
side (720p on a portrait image gives 720x1080). The frame rate is low by default so rendering
stays fast, and renders are cached by content, so a thousand jobs on one image render once.
Rendering is CPU work: callers run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down")
SHORT_SIDE = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}
MARGIN = 1.15
"""How much larger than the frame the source is scaled, to leave room for the move."""
AUDIO_RATE = 22050


KEYWORDS = (
    ("zoom out", "zoom_out"),
    ("pull back", "zoom_out"),
    ("dolly", "zoom_in"),
    ("zoom", "zoom_in"),
    ("push in", "zoom_in"),
    ("right-to-left", "pan_left"),
    ("pan left", "pan_left"),
    ("pan", "pan_right"),
    ("tilt up", "pan_up"),
    ("rise", "pan_up"),
    ("tilt down", "pan_down"),
)


def pick_motion(text: str) -> str:
    """A camera move from the prompt's words when it names one (dolly, pan, zoom out, …),
    else chosen deterministically from its hash."""
    lowered = text.lower()
    for word, motion in KEYWORDS:
        if word in lowered:
            return motion
    return MOTIONS[hashlib.sha256(text.encode()).digest()[0] % len(MOTIONS)]


def frame_size(
    width: int, height: int, resolution: str | None, scale: float = 1.0
) -> tuple[int, int]:
    """(w, h): the image's aspect with the resolution as the short side, both even."""
    short = SHORT_SIDE.get(str(resolution), 720) * scale
    if width >= height:
        h, w = short, short * width / height
    else:
        w, h = short, short * height / width
    return max(2, round(w / 2) * 2), max(2, round(h / 2) * 2)


def cache_key(
    image_sha: str, motion: str, size: tuple[int, int], seconds: int, fps: int, audio: bool
) -> str:
    """A render's cache key: everything that changes the video's bytes."""
    text = f"{image_sha}:{motion}:{size[0]}x{size[1]}:{seconds}:{fps}:{int(audio)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _crop_box(motion: str, t: float, w: float, h: float) -> tuple[float, float, float, float]:
    """Crop of the enlarged source (size w*MARGIN x h*MARGIN) for progress t in 0..1."""
    big_w, big_h = w * MARGIN, h * MARGIN
    ease = 0.5 - 0.5 * math.cos(math.pi * t)
    if motion in ("zoom_in", "zoom_out"):
        z = ease if motion == "zoom_in" else 1 - ease
        cw, ch = big_w - (big_w - w) * z, big_h - (big_h - h) * z
        x, y = (big_w - cw) / 2, (big_h - ch) / 2
        return x, y, x + cw, y + ch
    slack_x, slack_y = big_w - w, big_h - h
    x, y = slack_x / 2, slack_y / 2
    if motion == "pan_left":
        x = slack_x * (1 - ease)
    elif motion == "pan_right":
        x = slack_x * ease
    elif motion == "pan_up":
        y = slack_y * (1 - ease)
    else:
        y = slack_y * ease
    return x, y, x + w, y + h


def render_video(
    image_bytes: bytes,
    out_path: Path,
    *,
    size: tuple[int, int],
    seconds: int,
    fps: int,
    motion: str,
    audio: bool,
) -> None:
    """Encode the clip to out_path atomically (temp file, then rename)."""
    w, h = size
    src = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    big = src.resize((int(w * MARGIN) + 2, int(h * MARGIN) + 2), Image.Resampling.BILINEAR)
    frames = max(1, seconds * fps)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    with av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "stillimage", "crf": "30"}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for i in range(frames):
            t = i / max(1, frames - 1)
            frame_img = big.resize(
                (w, h), Image.Resampling.BILINEAR, box=_crop_box(motion, t, w, h)
            )
            frame = av.VideoFrame.from_ndarray(np.asarray(frame_img), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            _tone(container, sound, seconds)
    tmp.replace(out_path)


def _tone(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: int
) -> None:
    chunk = 1024
    total = seconds * AUDIO_RATE
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / AUDIO_RATE).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def placeholder_image(seed: str) -> bytes:
    """For image URLs the emulator cannot fetch (no network): a deterministic gradient."""
    digest = hashlib.sha256(seed.encode()).digest()
    y = np.linspace(0, 1, 360, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, 640, dtype=np.float32)[None, :, None]
    base = np.array(list(digest[:3]), dtype=np.float32)[None, None, :]
    arr = (base * (0.4 + 0.6 * x) + 80 * y).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
