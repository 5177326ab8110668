"""The audio stage of a run: audio added to finished videos by updateVideoAudio (akool-api.md §6),
one paid call per video variant, after the video is done.

It runs inside the executor and shares what the executor has: the create lane of the rate
limiter, the one polling loop (an audio record is polled by resultsByIds like a video), the
journal (the same `intent` before the call, fsynced; `created` right after the answer; then
`status`, `downloaded`, `failed`, on the audio job's own fingerprint) and the run's stats and
events. So a crash between the intent and the answer leaves an unknown (never bought again on its
own), and a crash after it leaves a submitted record that the next run re-queries.

An audio item waits for its video when the video is part of this run's work: it learns the
video's outcome from the run's own events (DONE: buy the audio now; FAILED, UNKNOWN, SKIPPED,
FATAL: nothing to add audio to, leave it for a rerun).
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel

from ..errors import (
    DownloadError,
    FatalProviderError,
    JobRejectedError,
    ProviderError,
    TransientError,
    UnknownOutcomeError,
)
from ..model import (
    TERMINAL_STATUSES,
    Action,
    AudioJob,
    Event,
    EventKind,
    JobSpec,
    JobStatus,
    PlanItem,
)
from ..state.journal import record as journal_record
from . import retry
from .providers.base import Created

if TYPE_CHECKING:
    from .executor import Executor, Tracked

GIVE_UP = (EventKind.FAILED, EventKind.UNKNOWN, EventKind.SKIPPED, EventKind.FATAL)
"""A video's outcomes that leave nothing to add audio to in this run."""


def audio_label(job: AudioJob) -> str:
    """How events name an audio job: `cat.hello (audio)`, `cat.hello (audio v2)`. Never a job
    id (ids have no spaces), so a video's events and its audio's never mix."""
    variant = f" v{job.variant}" if job.video.variants > 1 else ""
    return f"{job.video.id} (audio{variant})"


def result_spec(job: AudioJob) -> JobSpec:
    """The audio result as a one-variant video spec: what delivery downloads and checks (its
    length and frame are the video's), under the audio job's fingerprint and output path."""
    video = job.video
    shape = {"video_length": video.seconds, "resolution": video.resolution, "count": 1}
    return JobSpec(
        id=audio_label(job),
        image=video.image,
        request={k: v for k, v in shape.items() if v is not None},
        output=job.output,
        tags=video.tags,
        fingerprint=job.fingerprint,
    )


class AudioStage:
    """Buys, polls (through the executor's loop) and downloads the run's audio items."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.emit = ex.emit
        """The run's event sink itself: the stage's own events are not watched."""
        # the audio result must have an audio stream; otherwise delivery is shared as it is
        self.delivery = copy.copy(ex.delivery)
        self.delivery.policy = dataclasses.replace(ex.delivery.policy, need_audio=True)
        self.waiting: dict[str, list[PlanItem]] = {}
        """video job id -> audio items to buy once that video is done"""
        self.busy = 0
        """audio items not yet tracked by the poller nor given up: the poll loop waits for them"""
        self.owned: set[str] = set()
        """fingerprints of the audio records the poller tracks"""

    def watch(self, sink: Callable[[Event], None]) -> Callable[[Event], None]:
        """The executor's event sink: passes every event on, and hears its videos' outcomes."""

        def on_event(event: Event) -> None:
            sink(event)
            self._heard(event)

        return on_event

    # ------------------------------------------------------------------ start
    def start(self, tg: anyio.abc.TaskGroup, items: Sequence[PlanItem]) -> None:
        """Take the run's audio items: buy, resume, download or copy each, or wait for its
        video when the video is part of this run's work."""
        video_work = {i.spec.id for i in items if i.spec is not None and i.action.is_work}
        for item in items:
            job = item.audio
            if job is None:
                continue
            if item.entry is not None and item.entry.job_id != job.video.id:
                self.ex.record(journal_record("relabel", job.fingerprint, id=job.video.id))
            if item.action is Action.AUDIO:
                self.busy += 1
                if job.video.id in video_work:
                    self.waiting.setdefault(job.video.id, []).append(item)
                else:
                    tg.start_soon(self._buy, item)
            elif item.action in (Action.RESUME, Action.DOWNLOAD):
                self._track(job, None)
            elif item.action is Action.RELOCATE:
                tg.start_soon(self._relocate, job)

    def _heard(self, event: Event) -> None:
        if event.kind is EventKind.FATAL and not event.job_id:  # the poller stopped: all go
            for vid in list(self.waiting):
                self._give_up(vid, event.detail)
            return
        if event.job_id not in self.waiting:
            return
        if event.kind is EventKind.DONE:
            assert self.ex._tg is not None
            for item in self.waiting.pop(event.job_id):
                self.ex._tg.start_soon(self._buy, item)
        elif event.kind in GIVE_UP:
            self._give_up(event.job_id, event.detail)

    def _give_up(self, video_id: str, why: str) -> None:
        for item in self.waiting.pop(video_id, []):
            assert item.audio is not None
            self._skip(item.audio, f"its video did not finish in this run ({why})")

    def _skip(self, job: AudioJob, why: str) -> None:
        self.emit(Event(EventKind.SKIPPED, audio_label(job), why))
        self._settle()

    def _settle(self) -> None:
        self.busy -= 1
        self.ex._wake.set()

    # ------------------------------------------------------------------ buy
    def _pre_video_id(self, job: AudioJob) -> str | None:
        """The finished video's remote id for this variant, or None if it has none."""
        v = self.ex.entries.get(job.video.fingerprint)
        i = job.variant - 1
        if v is None or v.state != "succeeded" or i >= len(v.remote_ids):
            return None
        return v.remote_ids[i] if v.remote_status[i] == JobStatus.SUCCEEDED else None

    def _blocked(self, cost: int) -> str | None:
        ex = self.ex
        if ex.stop.is_set() or ex.stats.fatal:
            return "the run stopped submitting"
        if ex.max_credits is not None and ex.stats.credits + cost > ex.max_credits:
            return f"--max-credits {ex.max_credits} would be passed"
        return None

    async def _buy(self, item: PlanItem) -> None:
        job = item.audio
        assert job is not None
        pre = self._pre_video_id(job)
        if pre is None:
            self._skip(job, "its video is not done; a rerun adds the audio once it is")
            return
        if (why := self._blocked(item.credits)) is not None:
            self.ex.stats.skipped += 1
            self._skip(job, why)
            return
        await self.ex.create_limiter.acquire()
        if (why := self._blocked(item.credits)) is not None:  # it may have come while we waited
            self.ex.stats.skipped += 1
            self._skip(job, why)
            return
        try:
            created = await self._call(job, pre)
            if created is not None:
                self._track(job, created)
        finally:
            self._settle()

    async def _call(self, job: AudioJob, pre: str) -> Created | None:
        ex, label = self.ex, audio_label(job)
        attempt = uuid.uuid4().hex[:12]
        try:
            ex.stats.requests += 1
            send = lambda: self._send(job, pre, attempt)  # noqa: E731
            return await retry.call(send, ex.create_limiter, sleep=ex._sleep, paced=True)
        except UnknownOutcomeError as exc:
            ex.stats.unknown += 1
            self.emit(Event(EventKind.UNKNOWN, label, exc.message))
        except FatalProviderError as exc:
            ex.stats.fatal = ex.stats.fatal or exc
            self.emit(Event(EventKind.FATAL, label, exc.message))
        except (TransientError, JobRejectedError) as exc:
            ex.stats.failed += 1
            self.emit(Event(EventKind.FAILED, label, exc.message))
        return None

    async def _send(self, job: AudioJob, pre: str, attempt: str) -> Created:
        """One attempt, as the executor sends a create: the intent fsynced just before the call
        leaves, `created` written right after the answer, shielded from Ctrl-C in between."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        fp, ex = job.fingerprint, self.ex
        intent = {
            "id": job.video.id,
            "attempt": attempt,
            "request": {**job.request, "pre_video_id": pre},
            "video": job.video.fingerprint,
            "variant": job.variant,
        }
        with anyio.CancelScope(shield=True):
            await ex.record_durably(journal_record("intent", fp, **intent))
            try:
                created = await ex.provider.update_audio(pre, job.request)
            except JobRejectedError as exc:
                await ex.record_durably(
                    journal_record("failed", fp, code=exc.code, message=exc.message)
                )
                raise
            except (TransientError, FatalProviderError) as exc:
                if isinstance(exc, FatalProviderError):
                    ex.stats.fatal = ex.stats.fatal or exc
                await ex.record_durably(journal_record("forget", fp))  # nothing was bought
                raise
            answer = {**intent, "ids": list(created.ids), "credits": created.credits}
            ex.record(journal_record("created", fp, **answer))  # fsynced with the next intent
        return created

    # ------------------------------------------------------------------ poll, download
    def _track(self, job: AudioJob, created: Created | None) -> None:
        """Hand the audio record to the executor's poller (a new one, or one from the lock:
        re-queried first, as its URL may be stale)."""
        from .executor import Tracked

        ex, fp = self.ex, job.fingerprint
        queued: int = JobStatus.QUEUED
        if created is not None:
            ids, status = list(created.ids), [queued] * len(created.ids)
            ex.stats.credits += created.credits or 0
            self.emit(Event(EventKind.SUBMITTED, audio_label(job), "audio", created.credits or 0))
        else:
            e = ex.entries[fp]
            ids = list(e.remote_ids)
            status = [s if s not in TERMINAL_STATUSES else queued for s in e.remote_status]
        self.owned.add(fp)
        ex.tracked[fp] = Tracked(result_spec(job), ids, status, [None] * len(ids))
        ex.schedule.add(fp, ex._now(), at_once=created is None, webhook=created is not None)
        ex._wake.set()

    def owns(self, t: Tracked) -> bool:
        """True for an audio record (its download is the stage's)."""
        return t.spec.fingerprint in self.owned

    async def download(self, t: Tracked) -> None:
        """Land a finished audio result; it must decode and have an audio stream."""
        try:
            await self.delivery.download(t.spec, t.ids, t.urls)
        except (DownloadError, ProviderError) as exc:
            self.ex.stats.failed += 1
            self.emit(Event(EventKind.FAILED, t.spec.id, exc.message))
            return
        self.ex.stats.done += 1
        self.emit(Event(EventKind.DONE, t.spec.id, "video with audio"))

    async def _relocate(self, job: AudioJob) -> None:
        try:
            await self.delivery.relocate(result_spec(job))
        except OSError as exc:
            self.ex.stats.failed += 1
            self.emit(Event(EventKind.FAILED, audio_label(job), f"could not copy ({exc})"))
            return
        self.ex.stats.done += 1
        self.emit(Event(EventKind.DONE, audio_label(job), "copied to its new path"))
