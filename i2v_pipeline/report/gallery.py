"""The HTML gallery: one self-contained page (inline CSS and JS, no CDN, no server) that opens
from file:// and keeps working when its folder is zipped or published with the videos, which it
reaches by relative paths.

Every value from a manifest or lock goes through Jinja's autoescape; the page embeds no data in
<script> (cards carry theirs in escaped data- attributes), so no prompt can end the script.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from .cards import STATUSES, Card, Report, human_duration
from .posters import poster, thumbnail

ASSETS = ("gallery.css", "gallery.js")


@dataclass(frozen=True, slots=True)
class CardView:
    """A card with what depends on where the page is written: links and stills."""

    card: Card
    video_href: str | None
    poster_href: str | None
    thumb_href: str | None
    audio_href: str | None


def href(target: Path, page_dir: Path) -> str:
    """A relative URL from the page's folder to target, percent-encoded (a `#` or `?` in a
    file name must not cut the URL short)."""
    rel = Path(os.path.relpath(target, page_dir)).as_posix()
    return quote(rel, safe="/")


def _views(report: Report, out_dir: Path, *, stills: bool) -> list[CardView]:
    posters, thumbs = out_dir / "posters", out_dir / "thumbs"
    views = []
    for c in report.cards:
        video = report.base_dir / c.video if c.video else None
        v_href = href(video, out_dir) if video is not None and c.present else None
        p_href = t_href = a_href = None
        if stills and video is not None and c.present:
            made = poster(video, c.video_sha256 or c.fingerprint, posters)
            p_href = href(made, out_dir) if made else None
        if stills and c.image_file and c.image_sha256:
            made = thumbnail(Path(c.image_file), c.image_sha256, thumbs)
            t_href = href(made, out_dir) if made else None
        if c.audio and c.audio.path:
            a_href = href(report.base_dir / c.audio.path, out_dir)
        views.append(CardView(c, v_href, p_href, t_href, a_href))
    return views


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("i2v_pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _asset(name: str) -> str:
    return (resources.files("i2v_pipeline.report") / "templates" / name).read_text("utf-8")


def render_html(report: Report, out_dir: Path, *, stills: bool = True) -> str:
    """The page for out_dir/index.html; with stills, posters and thumbnails go beside it."""
    env = _environment()
    env.filters["duration"] = human_duration
    context: dict[str, Any] = {
        "report": report,
        "cards": _views(report, out_dir, stills=stills),
        "card_counts": report.card_counts(),
        "job_count": len(report.job_status),
        "statuses": [s for s in STATUSES if s in report.card_counts()],
        "tags": report.tags(),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "css": _asset("gallery.css"),
        "js": _asset("gallery.js"),
    }
    return env.get_template("gallery.html.j2").render(context)


def write_html(report: Report, out_dir: Path) -> Path:
    """Write out_dir/index.html (and its stills); return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    text = render_html(report, out_dir)
    tmp = page.with_name(f".index.html.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, page)
    return page
