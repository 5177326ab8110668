"""The audio stage as the manifest asks for it: `update_audio:` -> an AudioStage per job, and one
fingerprinted AudioJob per video variant.

`update_audio:` is a setting like the request fields (defaults, image, prompt or job `fields:`,
the most specific block wins whole; `null` turns it off). It is not part of the video's request:
an audio job's fingerprint is the video's fingerprint plus the variant and the canonical audio
request, so changing only the audio buys new audio and never a new video. `audio:` (the
create-time audio_type) is a different, free field and stays as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json
from ..errors import ManifestError
from ..model import AudioJob, AudioStage, JobSpec
from .simple import Template
from .templating import compile_template, is_template, render

if TYPE_CHECKING:  # images imports the manifest, whose schema check imports this module
    from .images import Loc

KEY = "update_audio"
DEFAULT_OUTPUT = "{{ id }}.audio.mp4"
ENDPOINT_KIND = "image2video.updateVideoAudio"
HINT = "write `update_audio: {type: ai}` or `update_audio: {type: custom, url: https://…}`"

Confine = Callable[[str, str, str], str]
"""(rendered path, where, job id) -> the confined output path (expand's own checks)."""


class AudioStages:
    """Renders each job's `update_audio:` block; templates compiled once per distinct text."""

    def __init__(self, confine: Confine) -> None:
        self.confine = confine
        self._templates: dict[str, Template | str] = {}

    def _template(self, text: str, where: str) -> Template | str:
        cached = self._templates.get(text)
        if cached is None:
            fresh = compile_template(text, where) if is_template(text) else text
            self._templates[text] = cached = fresh
        return cached

    def _render(self, text: str, ctx: Mapping[str, Any], where: str, what: str) -> str:
        template = self._template(text, where)
        if isinstance(template, str):
            return template
        return render(template, ctx, where=where, what=what)

    def stage(
        self, block: Any, ctx: Mapping[str, Any], *, where: str, job_id: str
    ) -> AudioStage | None:
        """The job's AudioStage (None when it has none); ManifestError for a bad block.

        The schema has already checked the block's shape; this checks what it cannot: the
        rendered URL and output path, and a URL given to `type: ai`."""
        if block is None:
            return None
        what = f"job {job_id}: {KEY}"
        kind = block["type"]
        url: str | None = None
        if kind == "ai" and "url" in block:
            raise ManifestError(
                f"{what}: `url` is only for `type: custom` (AI audio is generated)",
                where=where,
                hint="remove url, or use type: custom",
            )
        if kind == "custom":
            url = self._render(str(block["url"]), ctx, where, f"{what}.url").strip()
            if not url.startswith(("https://", "http://")):
                raise ManifestError(
                    f"{what}.url renders to {url!r}, which is not an http(s) URL",
                    where=where,
                    hint="the API fetches the audio itself: give a public https:// URL",
                )
        rendered = self._render(str(block.get("output", DEFAULT_OUTPUT)), ctx, where, what)
        output = self.confine(rendered, where, job_id)
        if not output.lower().endswith(".mp4"):
            raise ManifestError(
                f"{what}.output {output!r} does not end in .mp4",
                where=where,
                hint="the audio stage returns a video with sound: end output in `.mp4`",
            )
        return AudioStage(kind, url, output)


def block_loc(
    defaults: Mapping[str, Any],
    image_fields: Mapping[str, Any],
    image_loc: Loc,
    layers: Sequence[Mapping[str, Any]],
    loc: Loc,
) -> Loc | None:
    """The manifest path of the `update_audio:` block a job uses (the most specific layer that
    has one): defaults, the image's fields, the prompt's fields (a generated job, loc is its
    prompt's) or an explicit job's fields; None when no single line says (a matrix layer)."""
    found: Loc | None = ("defaults", KEY) if KEY in defaults else None
    if KEY in image_fields:
        found = (*image_loc, "fields", KEY)
    for n, layer in enumerate(layers):
        if KEY not in layer:
            continue
        if loc[:1] == ("jobs",) and n == len(layers) - 1:
            found = (*loc, "fields", KEY)
        elif loc[:1] == ("prompts",) and n == 0:
            found = (*loc[:-1], "fields", KEY)
        else:
            found = None
    return found


def output_paths(spec: JobSpec) -> list[str]:
    """The audio results' paths (relative to the output folder), one per variant, numbered as
    the videos are: `a.audio.mp4`, or `a.audio-v1.mp4`, `a.audio-v2.mp4`, …"""
    if spec.audio is None:
        return []
    n = spec.variants
    if n == 1:
        return [spec.audio.output]
    p = PurePosixPath(spec.audio.output)
    return [str(p.with_name(f"{p.stem}-v{i}{p.suffix}")) for i in range(1, n + 1)]


def audio_fingerprint(video_fp: str, variant: int, request: Mapping[str, Any]) -> str:
    """The audio job's key: the video's fingerprint, the variant and the audio request."""
    payload = {
        "endpoint": ENDPOINT_KIND,
        "video": video_fp,
        "variant": variant,
        "request": dict(request),
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def audio_jobs(spec: JobSpec) -> list[AudioJob]:
    """One audio call per variant of spec's video (none without `update_audio:`)."""
    if spec.audio is None:
        return []
    request = spec.audio.request
    return [
        AudioJob(spec, i, request, path, audio_fingerprint(spec.fingerprint, i, request))
        for i, path in enumerate(output_paths(spec), 1)
    ]
