"""Value types shared by every layer: job specs, lock entries, plan items, run events.

Nothing here does I/O. Lock entries change by `dataclasses.replace`, never in place, so a
journal record and the entry it produced can be compared in tests.

The types built once per job (JobSpec, FileRecord, LockEntry, PlanItem: 100,000 of each in a
large plan) are not `frozen=True`: a frozen dataclass's __init__ sets each field through
object.__setattr__, 3-5x slower than plain assignment (~0.5 s of a 100k-job plan). They are
values all the same: never assign to a field, change them with `dataclasses.replace`. They
hash and compare by value as the frozen ones do (unsafe_hash: safe while nobody assigns).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from .errors import ProviderError


class JobStatus(enum.IntEnum):
    """Where one remote video stands, in our own words; providers map their answers to it.

    The values are how the journal and the lockfile store a status (`remote_status`). They were
    AKOOL's numbers when the lock format was fixed and must not change, or existing locks would
    read wrong; a provider maps its own codes explicitly (run/providers/akool.py)."""

    QUEUED = 1
    PROCESSING = 2
    SUCCEEDED = 3
    FAILED = 4

    @property
    def terminal(self) -> bool:
        """True once the video will change no more (succeeded or failed)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[int] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An input image: a local file (hashed by content) or a URL (keyed by URL or a pin)."""

    kind: Literal["path", "url"]
    value: str
    """Absolute filesystem path for `path`, the URL for `url`."""
    display: str
    """As written in the manifest, for messages."""
    sha256: str | None = None
    """Content hash of a local file, or the `sha256:` pin of a URL."""

    def identity(self) -> dict[str, str]:
        """What the fingerprint sees: content for files, URL (or its pin) for URLs."""
        if self.sha256:
            return {"sha256": self.sha256}
        return {"url": self.value}

    def to_json(self) -> dict[str, Any]:
        """The form `expand --json` and `plan --json` print (path or url, plus any pin)."""
        out: dict[str, Any] = {self.kind: self.display}
        if self.sha256:
            out["sha256"] = self.sha256
        return out


AUDIO_TYPE_CODES = {"ai": 1, "custom": 2}
"""Manifest `update_audio.type` -> updateVideoAudio's `audio_type` (akool-api.md §6)."""


@dataclass(frozen=True, slots=True)
class AudioStage:
    """A job's `update_audio:` block, rendered: audio added to each finished video variant by
    its own paid call (updateVideoAudio), after the video is done."""

    type: Literal["ai", "custom"]
    url: str | None
    """The custom audio's URL (type custom only), rendered for this job."""
    output: str
    """Posix path relative to the output folder, for the first variant's audio result."""

    @property
    def request(self) -> dict[str, Any]:
        """The canonical audio request (what its fingerprint hashes)."""
        return {"audio_type": AUDIO_TYPE_CODES[self.type], "audio_url": self.url or ""}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "output": self.output}
        if self.url:
            out["url"] = self.url
        return out


@dataclass(slots=True, unsafe_hash=True)  # a value: see the module docstring
class JobSpec:
    """One fully rendered job: what to ask the API for and where to put the result."""

    id: str
    image: ImageRef
    request: Mapping[str, Any]
    """The canonical request (prompt, model_name, resolution, video_length, count, …): the
    versioned form the fingerprint hashes and the lock records (see spec/fingerprint.py). Its keys
    are fixed by existing locks; only a provider turns it into a wire body, adding the image URLs
    and the webhook, which depend on where the run goes."""
    output: str
    """Posix path relative to the output folder, for the first variant."""
    prompt_id: str | None = None
    last_frame: ImageRef | None = None
    tags: tuple[str, ...] = ()
    fingerprint: str = ""
    audio: AudioStage | None = None
    """The audio stage (`update_audio:`), if any: not part of the video's fingerprint."""

    @property
    def variants(self) -> int:
        """How many videos one create buys (the request's `count`)."""
        return int(self.request.get("count", 1))

    @property
    def seconds(self) -> Any:
        """The requested duration, as the manifest gave it (None when unset)."""
        return self.request.get("video_length")

    @property
    def resolution(self) -> Any:
        """The requested resolution ("720p", …), None when unset."""
        return self.request.get("resolution")

    def output_paths(self) -> list[str]:
        """One path per variant: `a.mp4`, or `a-v1.mp4`, `a-v2.mp4`, … when count > 1."""
        if self.request.get("count", 1) == 1:  # the usual one (twice a job in a plan)
            return [self.output]
        n = self.variants
        if n == 1:
            return [self.output]
        p = PurePosixPath(self.output)
        return [str(p.with_name(f"{p.stem}-v{i}{p.suffix}")) for i in range(1, n + 1)]

    def to_json(self) -> dict[str, Any]:
        """The checked form: what job.schema.json validates and `expand --json` prints."""
        out: dict[str, Any] = {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "image": self.image.to_json(),
            "request": dict(self.request),
            "output": self.output,
            "tags": list(self.tags),
        }
        if self.prompt_id is not None:
            out["prompt_id"] = self.prompt_id
        if self.last_frame is not None:
            out["last_frame"] = self.last_frame.to_json()
        if self.audio is not None:
            out["update_audio"] = self.audio.to_json()
        return out


@dataclass(frozen=True, slots=True)
class AudioJob:
    """One paid audio call: audio added to one variant of a job's video (spec/audio.py)."""

    video: JobSpec
    variant: int
    """1-based, as output paths number variants."""
    request: Mapping[str, Any]
    """The canonical audio request: audio_type, audio_url (video and variant are in the
    fingerprint)."""
    output: str
    """Posix path relative to the output folder."""
    fingerprint: str


@dataclass(slots=True, unsafe_hash=True)  # a value: see the module docstring
class FileRecord:
    """A downloaded, verified result file. path is relative to the manifest's folder."""

    path: str
    sha256: str
    bytes: int
    mtime_ns: int | None = None
    """The file's mtime when written: same size and mtime means unchanged (no hashing)."""
    mismatch: str | None = None
    """How the video differs from the request (duration, frame size), when it does: kept
    under `verify: warn`, shown by plan and status."""
    stored: bool = False
    """The file was uploaded to (or fetched from) the manifest's `store:`, keyed by sha256."""


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """Why a job failed, as the lock keeps it: AKOOL's code (if any) and the message."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class PaidAttempt:
    """Another create of the same job that was paid for too: two clones ran it, and merging
    their locks (state/merge.py) keeps one attempt as the entry and this one beside it."""

    attempt: str
    remote_ids: tuple[str, ...]
    credits: int | None = None


Verify = Literal["strict", "warn", "off"]
"""Manifest `verify`: what a downloaded video's duration or frame size mismatch does."""

LockState = Literal["unknown", "submitted", "succeeded", "failed"]


@dataclass(slots=True, unsafe_hash=True)  # a value: see the module docstring
class LockEntry:
    """What the lock knows about one fingerprint: what was bought, and what we hold of it."""

    job_id: str
    fingerprint: str
    state: LockState
    attempt: str
    request_json: str = "{}"
    """The request as sent (image identity included) as JSON text, so a changed job can say what
    changed. Kept as text: a 100,000-job lock would otherwise hold 100,000 dicts."""
    remote_ids: tuple[str, ...] = ()
    remote_status: tuple[int, ...] = ()
    credits: int | None = None
    files: tuple[FileRecord | None, ...] = ()
    intent_at: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    expires_at: str | None = None
    error: ErrorRecord | None = None
    video: str | None = None
    """Set on an audio record (the audio stage): the fingerprint of the video it adds to."""
    variant: int | None = None
    """On an audio record: which variant of that video (1-based)."""
    also_paid: tuple[PaidAttempt, ...] = ()
    """Other paid creates of this job, kept by a lock merge: never lose a paid remote id."""

    @property
    def request(self) -> dict[str, Any]:
        """request_json parsed: only for the rare reader that needs the fields."""
        result: dict[str, Any] = json.loads(self.request_json)
        return result


class Action(enum.Enum):
    """What a plan does with a job; the value is the symbol printed in the plan."""

    CREATE = "+"
    AUDIO = "+♪"
    """Audio added to a finished video by its own paid call (PlanItem.audio says which)."""
    REPLACE = "-/+"
    """A job whose request changed: its old lock entry is superseded by a new create."""
    RETRY = "!"
    RESUME = "~"
    DOWNLOAD = "↓"
    STORE = "⇣"
    """Finished, file missing locally, held by the manifest's store: fetched from there (no API
    request, no credits; the result URL may have expired)."""
    RELOCATE = "→"
    FRESH = "="
    FAILED = "x"
    UNKNOWN = "?"
    ORPHAN = "-"

    @property
    def label(self) -> str:
        return self._name_.lower()  # not .name: a descriptor call, 300,000 of them in a big plan

    @property
    def submits(self) -> bool:
        """True when this action sends a create request (and costs credits)."""
        return self in (Action.CREATE, Action.REPLACE, Action.RETRY)

    @property
    def is_work(self) -> bool:
        """True when a run would do anything for this item."""
        return self not in (Action.FRESH, Action.FAILED, Action.UNKNOWN, Action.ORPHAN)


@dataclass(frozen=True, slots=True)
class Change:
    """One request attribute a replaced job changes: the lock's old value, the spec's new one
    (None where the attribute is absent on that side)."""

    field: str
    old: Any
    new: Any


@dataclass(slots=True, unsafe_hash=True)  # a value: see the module docstring
class PlanItem:
    """One line of a plan: what will happen to a job, and why."""

    action: Action
    job_id: str
    fingerprint: str
    reason: str
    spec: JobSpec | None = None
    entry: LockEntry | None = None
    credits: int = 0
    """Estimated credits this item will spend (creates only)."""
    changes: tuple[Change, ...] = ()
    """For a replace: what differs from the superseded lock entry's request."""
    replaces: LockEntry | None = None
    """For a replace: the lock entry (same job id, old fingerprint) it supersedes."""
    audio: AudioJob | None = None
    """Set on an item of the audio stage (then spec is None: the video is audio.video)."""


class EventKind(enum.Enum):
    """What a run reports to its progress display, one event per change of a job."""

    SUBMITTED = "submitted"
    STATUS = "status"
    DOWNLOADED = "downloaded"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    THROTTLED = "throttled"
    FATAL = "fatal"
    SKIPPED = "skipped"
    NOTICE = "notice"
    """Something the user should know once, e.g. a setting that holds the run back."""


@dataclass(frozen=True, slots=True)
class Event:
    """Something the executor reports; the CLI turns these into progress and summaries."""

    kind: EventKind
    job_id: str = ""
    detail: str = ""
    credits: int = 0


@dataclass
class RunStats:
    """What a run did, counted by the executor (mutable: it is filled in as the run goes)."""

    created: int = 0
    done: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    timed_out: int = 0
    credits: int = 0
    requests: int = 0
    stored: int = 0
    """Files the run flagged stored in the manifest's store (uploaded, or already there)."""
    uploaded: int = 0
    """Objects the run uploaded to the store: one per video the store lacked."""
    fatal: ProviderError | None = None
