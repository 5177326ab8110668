"""The model catalog: which resolutions, durations and counts each model accepts, and prices.

A snapshot of AKOOL's model list ships with the package so validation works offline (and the
emulator serves it); `i2v models --refresh` writes a fresher copy of an endpoint's list to the
user's cache, which wins for manifests on that endpoint.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..text import plural

# Credits per video, from the documented price table (akool-api.md §12). The real formula is
# unknown, so this is an estimate; deduction_credit in responses is the truth.
PRICE_TABLE: dict[tuple[int, str], int] = {
    (5, "720p"): 20,
    (5, "1080p"): 25,
    (5, "4k"): 30,
    (10, "720p"): 40,
    (10, "1080p"): 50,
    (10, "4k"): 60,
}
PER_SECOND = {"480p": 3.0, "720p": 4.0, "1080p": 5.0, "4k": 6.0}
AUDIO_SURCHARGE = 1.2


def estimate_credits(request: Mapping[str, Any]) -> int:
    """Estimated credits for one create request (all its variants)."""
    seconds = int(request.get("video_length", 5))
    resolution = str(request.get("resolution") or "720p")
    per_video = PRICE_TABLE.get((seconds, resolution))
    if per_video is None:
        per_video = round(PER_SECOND.get(resolution, 4.0) * seconds)
    if request.get("generate_audio"):
        per_video = round(per_video * AUDIO_SURCHARGE)
    return per_video * int(request.get("count", 1))


AUDIO_PRICE: dict[int, int] = {5: 5, 10: 10}
"""Credits for one updateVideoAudio by the video's length in seconds (akool-api.md §6, §12);
free when the audio is asked for at create time instead (the `audio:` field)."""


def estimate_audio_credits(seconds: Any) -> int:
    """Estimated credits for adding audio to one finished video of this many seconds."""
    length = int(seconds or 5)
    return AUDIO_PRICE.get(length, 5 * max(1, length // 5))


def cache_root() -> Path:
    """The user's i2v cache folder (XDG): model lists."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "i2v"


def cache_dir() -> Path:
    """Where `i2v models --refresh` caches model lists, one file per endpoint (XDG cache)."""
    return cache_root() / "models"


def cache_path(endpoint: str) -> Path:
    """The cache file for one endpoint's model list: `https://openapi.akool.com` ->
    `openapi.akool.com.json`, `http://127.0.0.1:8787` -> `127.0.0.1-8787.json`. One per
    endpoint, so a refresh against one never changes what another validates against."""
    host = endpoint.split("://", 1)[-1].rstrip("/")
    return cache_dir() / (re.sub(r"[^A-Za-z0-9.]+", "-", host).strip("-.") + ".json")


def _age(seconds: float) -> str:
    """`just now`, `5 minutes ago`, `3 hours ago`, `2 days ago`."""
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{plural(round(seconds / 60), 'minute')} ago"
    if seconds < 36 * 3600:
        return f"{plural(round(seconds / 3600), 'hour')} ago"
    return f"{plural(round(seconds / 86400), 'day')} ago"


@dataclass(frozen=True)
class Problem:
    """A request the catalog rules out: the manifest field at fault and what is wrong."""

    field: str
    """The manifest's name for it (`duration`, `variants`, ...), to find the line that set it."""
    message: str
    hint: str = "`i2v models` lists each model's resolutions, durations and variant limits"


@dataclass(frozen=True)
class Model:
    """One model's limits as the catalog states them, normalised from AKOOL's answer."""

    value: str
    label: str
    resolutions: tuple[str, ...]
    durations: tuple[int, ...]
    max_count: int
    last_frame: bool
    audio: bool
    raw: Mapping[str, Any]

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Model:
        """A model from its entry in AKOOL's model list (missing lists mean no limit given)."""
        return cls(
            value=str(raw["value"]),
            label=str(raw.get("label", raw["value"])),
            resolutions=tuple(str(r["value"]) for r in raw.get("resolutionList") or ()),
            durations=tuple(int(d) for d in raw.get("durationList") or ()),
            max_count=min(10, int(raw.get("maxCount") or 10)),
            last_frame=bool(raw.get("supportedLastFrame")),
            # docs: true/null; the official demo: an object. Non-null means supported.
            audio=raw.get("generate_audio") not in (None, False),
            raw=raw,
        )


class Catalog:
    """The model list that validates requests: bundled snapshot, or the refreshed cache."""

    def __init__(self, models: list[Mapping[str, Any]], source: str) -> None:
        self.source = source
        ordered = sorted(models, key=lambda m: -int(m.get("sort", 0)))
        self.models = {m.value: m for m in map(Model.from_api, ordered)}
        self._checked: dict[tuple[Any, ...], Problem | None] = {}

    @classmethod
    def bundled(cls) -> Catalog:
        """The snapshot shipped in the package (what the emulator serves)."""
        text = (resources.files("i2v_pipeline") / "data" / "models.json").read_text("utf-8")
        doc = json.loads(text)
        return cls(doc["models"], f"bundled snapshot ({doc.get('snapshot', 'no date')})")

    @classmethod
    def load(cls, endpoint: str = "emulator", *, now: float | None = None) -> Catalog:
        """What a manifest on endpoint validates against: the emulator serves the bundled
        snapshot, so it always gets that; another endpoint gets its own cached copy from
        `i2v models --refresh` if there is one, else the snapshot."""
        if endpoint == "emulator":
            return cls.bundled()
        path = cache_path(endpoint)
        try:
            doc = json.loads(path.read_text("utf-8"))
            age = _age((time.time() if now is None else now) - path.stat().st_mtime)
            return cls(doc["models"], f"cache {path}, fetched from {endpoint} {age}")
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a broken cache is not worth failing over: the snapshot still works
        return cls.bundled()

    @staticmethod
    def save_cache(endpoint: str, models: list[Mapping[str, Any]]) -> Path:
        """Write endpoint's fetched model list to its cache file atomically; returns its path."""
        path = cache_path(endpoint)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoint": endpoint, "models": models}, indent=1), "utf-8")
        tmp.replace(path)
        return path

    def normalize(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """Drop `resolution` for models that have no resolution list (Kling): the API ignores
        it there, and keeping our default would only change fingerprints."""
        model = self.models.get(str(request.get("model_name")))
        if model and not model.resolutions and "resolution" in request:
            return {k: v for k, v in request.items() if k != "resolution"}
        return request

    def problem(self, request: Mapping[str, Any], has_last_frame: bool) -> Problem | None:
        """What is wrong with this request for its model, and the manifest field that set the
        wrong value, or None. Cached per field combination."""
        key = (
            request.get("model_name"),
            request.get("resolution"),
            request.get("video_length"),
            request.get("count", 1),
            has_last_frame,
            bool(request.get("generate_audio")),
            request.get("audio_type"),
            "audio_url" in request,
        )
        if key not in self._checked:
            self._checked[key] = self._problem(request, has_last_frame)
        return self._checked[key]

    def _problem(self, request: Mapping[str, Any], has_last_frame: bool) -> Problem | None:
        name = str(request.get("model_name"))
        model = self.models.get(name)
        if model is None:
            close = difflib.get_close_matches(name, list(self.models), n=1)
            also = f"; did you mean `{close[0]}`?" if close else ""
            return Problem(
                "model", f"unknown model `{name}`{also}", "`i2v models` lists the model names"
            )
        res = request.get("resolution")
        if model.resolutions and res not in model.resolutions:
            offered = ", ".join(model.resolutions)
            return Problem("resolution", f"model {name} offers resolutions {offered}, not {res!r}")
        seconds = request.get("video_length")
        if model.durations and seconds not in model.durations:
            offered = ", ".join(map(str, model.durations))
            return Problem(
                "duration", f"model {name} offers durations {offered} (seconds), not {seconds!r}"
            )
        count = int(request.get("count", 1))
        if count > model.max_count:
            return Problem(
                "variants",
                f"model {name} makes at most {model.max_count} variants per job, not {count}",
            )
        if has_last_frame and not model.last_frame:
            return Problem(
                "last_frame",
                f"model {name} does not support last_frame",
                "`i2v models` marks the models that take a last frame; or drop last_frame",
            )
        if request.get("generate_audio") and not model.audio:
            return Problem(
                "generate_audio",
                f"model {name} cannot generate audio (generate_audio: true)",
                "`i2v models` marks the models with audio; or drop generate_audio",
            )
        if request.get("audio_type") == 2 and "audio_url" not in request:
            return Problem(
                "audio",
                "audio: custom needs an audio_url",
                "add `audio_url: https://…` (your audio file), or use `audio: ai`",
            )
        if "audio_url" in request and request.get("audio_type") != 2:
            return Problem(
                "audio_url",
                "audio_url is only used with audio: custom",
                "add `audio: custom`, or remove audio_url",
            )
        return None
