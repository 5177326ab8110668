"""What a report shows, computed once from the campaign, the lock and the plan.

One card per video variant; a job's status comes from the plan (what `i2v run` would do next),
a card's from whether its file is on disk. Nothing here renders or writes: gallery.py and
markdown.py turn a Report into HTML and Markdown.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import Action, JobSpec, LockEntry, PlanItem

STATUSES = ("succeeded", "missing", "failed", "unknown", "submitted", "planned", "orphan")
"""Every status a card or job can have, in the order the header lists them."""

JOB_STATUS = {
    Action.FRESH: "succeeded",
    Action.RELOCATE: "succeeded",
    Action.DOWNLOAD: "missing",
    Action.STORE: "missing",
    Action.FAILED: "failed",
    Action.RETRY: "failed",
    Action.UNKNOWN: "unknown",
    Action.RESUME: "submitted",
    Action.CREATE: "planned",
    Action.AUDIO: "planned",
    Action.REPLACE: "planned",
    Action.ORPHAN: "orphan",
}

RUN_GAP = 60.0
"""Seconds between one job finishing and the next being sent that still count as one run: the
lock records no run boundaries, so the last run is the last cluster of job time spans."""

TEXT_FIELDS = ("prompt", "negative_prompt")


@dataclass(frozen=True, slots=True)
class AudioResult:
    """What the audio stage recorded for a video, when a lock entry carries one."""

    state: str
    path: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """One video variant as the gallery shows it."""

    job_id: str
    fingerprint: str
    variant: int
    variants: int
    status: str
    job_status: str
    reason: str
    tags: tuple[str, ...]
    image: str
    """The input image as written in the manifest (or its identity, for an orphan)."""
    image_file: str | None
    """Absolute path of a local input image, for its thumbnail."""
    image_sha256: str | None
    prompt_id: str | None
    prompt: str
    negative_prompt: str | None
    params: tuple[tuple[str, str], ...]
    credits: int | None
    planned_credits: int
    submitted_at: str | None
    finished_at: str | None
    seconds: float | None
    error: str | None
    video: str | None
    """Path relative to the manifest's folder, as the lock records it."""
    video_sha256: str | None
    present: bool
    expected_seconds: float | None
    audio: AudioResult | None


@dataclass(frozen=True, slots=True)
class RunWindow:
    start: str
    end: str
    seconds: float
    jobs: int


@dataclass(frozen=True)
class Report:
    name: str
    manifest: str
    base_dir: Path
    cards: list[Card]
    jobs: list[PlanItem]
    job_status: dict[str, str]
    """Status of each job and orphan entry, by fingerprint, in plan order."""
    credits_spent: int
    credits_planned: int
    last_run: RunWindow | None
    audio: list[PlanItem] = field(default_factory=list)
    """The audio stage's items and records (not jobs of their own): their credits count too."""

    def card_counts(self) -> dict[str, int]:
        counts = Counter(c.status for c in self.cards)
        return {s: counts[s] for s in STATUSES if counts[s]}

    def job_counts(self) -> dict[str, int]:
        counts = Counter(self.job_status.values())
        return {s: counts[s] for s in STATUSES if counts[s]}

    def tags(self) -> list[str]:
        return sorted({t for c in self.cards for t in c.tags})


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def last_run(entries: Sequence[LockEntry]) -> RunWindow | None:
    """The last run's wall time, from the jobs' own timestamps (the lock has no run record):
    spans from sent to finished, merged while the gap between them is under RUN_GAP."""
    spans = []
    for e in entries:
        start = parse_time(e.submitted_at or e.intent_at)
        end = parse_time(e.finished_at)
        if start is not None and end is not None and end >= start:
            spans.append((start, end, e))
    if not spans:
        return None
    spans.sort(key=lambda s: s[0])
    cluster_start, cluster_end, count = spans[0][0], spans[0][1], 1
    for start, end, _ in spans[1:]:
        if start > cluster_end + RUN_GAP:
            cluster_start, cluster_end, count = start, end, 1
        else:
            cluster_end, count = max(cluster_end, end), count + 1
    return RunWindow(_iso(cluster_start), _iso(cluster_end), cluster_end - cluster_start, count)


def human_duration(seconds: float | None) -> str:
    """12 s, 3 min 05 s, 2 h 10 min; - when unknown."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, sec = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def audio_of(entry: LockEntry | None, variant: int) -> AudioResult | None:
    """The audio stage's result for one variant, if the entry carries any.

    The audio stage keeps its records as lock entries of their own (see audio_results, which
    build_report uses); this reads an `audio` attribute (a mapping for the job, or a sequence
    with one mapping per variant) for an entry that carries one, and shows nothing otherwise.
    Fields: state (or status), path (or file), detail (or message, error)."""
    raw: Any = getattr(entry, "audio", None)
    if isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        raw = raw[variant - 1] if variant - 1 < len(raw) else None
    if not isinstance(raw, Mapping):
        return None
    state = raw.get("state", raw.get("status"))
    if state is None:
        return None
    path = raw.get("path", raw.get("file"))
    detail = raw.get("detail", raw.get("message", raw.get("error")))
    return AudioResult(str(state), str(path) if path else None, str(detail) if detail else None)


AudioKey = tuple[str, int]
"""(video fingerprint, variant)"""


def audio_results(items: Sequence[PlanItem], prefix: str) -> dict[AudioKey, AudioResult]:
    """What the audio stage holds or plans for each video variant, from the plan's audio items
    (and audio records orphaned with their video): an audio record is a lock entry of its own."""
    out: dict[AudioKey, AudioResult] = {}
    for item in items:
        e = item.entry
        if item.audio is not None:
            key: AudioKey = (item.audio.video.fingerprint, item.audio.variant)
            wanted = f"{prefix}/{item.audio.output}" if prefix != "." else item.audio.output
        elif e is not None and e.video is not None and e.variant is not None:
            key, wanted = (e.video, e.variant), ""
        else:
            continue
        held = e.files[0] if e is not None and e.files else None
        path = held.path if held is not None else wanted
        detail = e.error.message if e is not None and e.error else None
        out[key] = AudioResult(JOB_STATUS[item.action], path or None, detail)
    return out


def _params(request: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (k, v if isinstance(v, str) else _compact(v))
        for k, v in sorted(request.items())
        if k not in TEXT_FIELDS and k != "image" and k != "last_frame"
    )


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _elapsed(e: LockEntry | None) -> float | None:
    if e is None:
        return None
    start, end = parse_time(e.submitted_at), parse_time(e.finished_at)
    return end - start if start is not None and end is not None else None


def _cards(
    item: PlanItem,
    status: str,
    base_dir: Path,
    prefix: str,
    audio: Mapping[AudioKey, AudioResult],
) -> list[Card]:
    spec, e = item.spec, item.entry
    request: Mapping[str, Any] = spec.request if spec else (e.request if e else {})
    n = spec.variants if spec else max(len(e.files) if e else 0, len(e.remote_ids) if e else 0, 1)
    wanted = _wanted_paths(spec, prefix)
    cards = []
    for i in range(1, n + 1):
        rec = e.files[i - 1] if e is not None and i - 1 < len(e.files) else None
        video = rec.path if rec else None
        present = video is not None and os.path.isfile(base_dir / video)
        card_status = status
        if status in ("succeeded", "missing"):
            card_status = "succeeded" if present else "missing"
            video = video or (wanted[i - 1] if i - 1 < len(wanted) else None)
        cards.append(
            Card(
                job_id=item.job_id,
                fingerprint=item.fingerprint,
                variant=i,
                variants=n,
                status=card_status,
                job_status=status,
                reason=item.reason,
                tags=spec.tags if spec else (),
                image=_image_text(spec, request),
                image_file=spec.image.value if spec and spec.image.kind == "path" else None,
                image_sha256=spec.image.sha256 if spec else None,
                prompt_id=spec.prompt_id if spec else None,
                prompt=str(request.get("prompt", "")),
                negative_prompt=request.get("negative_prompt"),
                params=_params(request),
                credits=e.credits if e else None,
                planned_credits=item.credits,
                submitted_at=e.submitted_at if e else None,
                finished_at=e.finished_at if e else None,
                seconds=_elapsed(e),
                error=e.error.message if e and e.error else None,
                video=video,
                video_sha256=rec.sha256 if rec else None,
                present=present,
                expected_seconds=_number(request.get("video_length")),
                audio=audio.get((item.fingerprint, i)) or audio_of(e, i),
            )
        )
    return cards


def _wanted_paths(spec: JobSpec | None, prefix: str) -> list[str]:
    if spec is None:
        return []
    return [f"{prefix}/{p}" if prefix != "." else p for p in spec.output_paths()]


def _image_text(spec: JobSpec | None, request: Mapping[str, Any]) -> str:
    if spec is not None:
        return spec.image.display
    image = request.get("image")
    if isinstance(image, Mapping):
        return str(image.get("url") or f"sha256:{str(image.get('sha256', ''))[:12]}")
    return "?"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def build_report(
    *,
    name: str,
    manifest: str,
    base_dir: Path,
    prefix: str,
    items: Sequence[PlanItem],
    entries: Mapping[str, LockEntry],
) -> Report:
    """The report of a plan (one item per job and orphan entry) and the lock it was made from."""
    cards: list[Card] = []
    statuses: dict[str, str] = {}
    audio = audio_results(items, prefix)
    # the audio stage's items and records show on their video's card, not as jobs of their own
    jobs = [i for i in items if i.audio is None and (i.entry is None or i.entry.video is None)]
    stage = [i for i in items if i.audio is not None or (i.entry and i.entry.video is not None)]
    for item in jobs:
        status = JOB_STATUS[item.action]
        statuses[item.fingerprint] = status
        cards.extend(_cards(item, status, base_dir, prefix, audio))
    return Report(
        name=name,
        manifest=manifest,
        base_dir=base_dir,
        cards=cards,
        jobs=jobs,
        job_status=statuses,
        credits_spent=sum(e.credits or 0 for e in entries.values()),
        credits_planned=sum(i.credits for i in items),
        last_run=last_run(list(entries.values())),
        audio=stage,
    )
