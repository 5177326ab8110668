"""Execute a plan: create through the batch endpoint, one polling loop for the whole run,
streamed downloads, and a journal record for every state change. Emits events; never prints.

Money rules (design §2): an `intent` is fsynced when a create is about to leave (after the rate
limiter, the retry backoff and the slot, so an interrupted wait is never an unknown) and `created`
right after the answer. A create is retried only when it provably never reached the server or the
server said to retry; an answer lost in transit leaves an unknown, never a second create.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
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
    Event,
    EventKind,
    JobSpec,
    JobStatus,
    PlanItem,
    RunStats,
)
from ..spec.settings import Limits
from ..state.journal import record as journal_record
from ..state.journal import utc_iso
from ..state.lock import lock_request
from ..text import plural
from . import retry
from .delivery import Delivery
from .pacing import RateLimiter
from .providers.base import Created, CreateRequest, Provider, Result
from .recorder import Recorder

LOST_AFTER = 3
"""Polls in a row in which the API does not know an id before the video counts as lost."""
EXPIRY_SECONDS = 7 * 24 * 3600


@dataclass
class Tracked:
    """A job the poller watches: its remote ids and what we last saw of them."""

    spec: JobSpec
    ids: list[str]
    status: list[int]
    """Each video's last seen JobStatus (a plain int when read back from the lock)."""
    urls: list[str | None]
    slot: bool = False
    processing_since: float | None = None
    missing: int = 0


class Executor:
    """Runs plan items against a provider; built and owned by run.session.RunSession.

    It gets only what it uses: the provider, the recorder (journal and entries), the delivery
    that lands files, the limits, the request builder (spec -> our CreateRequest), the event
    sink, the rate limiters (shared with delivery's re-queries) and the stop event, which once
    set lets no further create start."""

    def __init__(
        self,
        *,
        provider: Provider,
        recorder: Recorder,
        delivery: Delivery,
        limits: Limits,
        request_for: Callable[[JobSpec], CreateRequest],
        on_event: Callable[[Event], None] = lambda e: None,
        max_credits: int | None = None,
        create_limiter: RateLimiter | None = None,
        request_limiter: RateLimiter | None = None,
        stop: anyio.Event | None = None,
    ) -> None:
        self.provider, self.delivery, self.limits = provider, delivery, limits
        self.entries = recorder.entries
        self.record, self.record_durably = recorder.record, recorder.record_durably
        self.request_for, self.emit = request_for, on_event
        self.max_credits = max_credits if max_credits is not None else limits.max_credits
        self.create_limiter = create_limiter or RateLimiter(limits.create_rps)
        self.request_limiter = request_limiter or RateLimiter(limits.request_rps)
        self.slots = anyio.Semaphore(limits.jobs_in_flight)
        self.tracked: dict[str, Tracked] = {}
        """fingerprint -> job being polled"""
        self.stats = RunStats()
        self.stop = stop or anyio.Event()
        """Set (by the session's stop()) to start no further create; in-flight jobs finish."""
        self._submitting = True
        self._creating = 0
        """creates sent and not yet answered"""
        self._wake = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------ run
    async def run(self, items: Sequence[PlanItem]) -> RunStats:
        """Create, resume, download or relocate every item; return what happened."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._poll_loop)
            creates = []
            for item in items:
                spec = item.spec
                if spec is None:
                    continue
                if item.entry is not None and item.entry.job_id != spec.id:
                    self.record(journal_record("relabel", spec.fingerprint, id=spec.id))
                if item.action.submits:
                    creates.append(item)
                elif item.action in (Action.RESUME, Action.DOWNLOAD):
                    self._track_existing(spec)
                elif item.action is Action.RELOCATE:
                    tg.start_soon(self._relocate, spec)
            await self._submit_all(creates)
            self._submitting = False
            self._wake.set()
        return self.stats

    def _track_existing(self, spec: JobSpec) -> None:
        """Resume and re-download both re-query first: URLs from another run may be stale."""
        e = self.entries[spec.fingerprint]
        n = len(e.remote_ids)
        queued: int = JobStatus.QUEUED
        status = [s if s not in TERMINAL_STATUSES else queued for s in e.remote_status]
        status = status or [queued] * n
        self.tracked[spec.fingerprint] = Tracked(spec, list(e.remote_ids), status, [None] * n)
        self._wake.set()

    # ------------------------------------------------------------------ creates
    async def _submit_all(self, items: Sequence[PlanItem]) -> None:
        spent = 0
        assert self._tg is not None
        for n, item in enumerate(items):
            if self.stop.is_set() or self.stats.fatal:
                self._skip(items[n:], "the run stopped submitting")
                return
            if self.max_credits is not None and spent + item.credits > self.max_credits:
                self._skip(items[n:], f"--max-credits {self.max_credits} would be passed")
                return
            await self.slots.acquire()
            if self.stop.is_set() or self.stats.fatal:  # it may have come while we waited
                self.slots.release()
                self._skip(items[n:], "the run stopped submitting")
                return
            spent += item.credits
            assert item.spec is not None
            self._creating += 1
            self._tg.start_soon(self._create_tracked, item.spec)

    def _skip(self, items: Sequence[PlanItem], why: str) -> None:
        for item in items:
            self.stats.skipped += 1
            self.emit(Event(EventKind.SKIPPED, item.job_id, why))

    async def _create_tracked(self, spec: JobSpec) -> None:
        try:
            await self._create(spec)
        finally:
            self._creating -= 1
            self._wake.set()

    async def _create(self, spec: JobSpec) -> None:
        fp = spec.fingerprint
        attempt = uuid.uuid4().hex[:12]
        request = self.request_for(spec)
        try:
            self.stats.requests += 1
            send = lambda: self._send(spec, attempt, request)  # noqa: E731
            created = await retry.call(send, self.create_limiter)
        except UnknownOutcomeError as exc:
            self.stats.unknown += 1
            self.emit(Event(EventKind.UNKNOWN, spec.id, exc.message))
            self.slots.release()
            return
        except (FatalProviderError, TransientError, JobRejectedError) as exc:
            if isinstance(exc, FatalProviderError):
                self.stats.fatal = self.stats.fatal or exc
                self.emit(Event(EventKind.FATAL, spec.id, exc.message))
            else:
                self.stats.failed += 1
                self.emit(Event(EventKind.FAILED, spec.id, exc.message))
            self.slots.release()
            return
        self.stats.created += 1
        self.stats.credits += created.credits or 0
        n = len(created.ids)
        queued: list[int] = [JobStatus.QUEUED] * n
        self.tracked[fp] = Tracked(spec, list(created.ids), queued, [None] * n, slot=True)
        self.emit(Event(EventKind.SUBMITTED, spec.id, plural(n, "video"), created.credits or 0))
        self._wake.set()

    async def _send(self, spec: JobSpec, attempt: str, request: CreateRequest) -> Created:
        """One attempt, called by retry.call after every wait (limiter, backoff): so an intent
        on disk always means a request left. From the intent to the recorded answer it is
        shielded: a Ctrl-C lets the answer arrive and be written instead of making an unknown
        (the provider's request timeout bounds the wait; a second Ctrl-C exits at once)."""
        await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled while waiting: never sent
        fp = spec.fingerprint
        intent = {"id": spec.id, "attempt": attempt, "request": lock_request(spec)}
        with anyio.CancelScope(shield=True):
            await self.record_durably(journal_record("intent", fp, **intent))
            try:
                created = await self.provider.create(request)
            except JobRejectedError as exc:  # the server looked at it and said no
                failed = journal_record("failed", fp, code=exc.code, message=exc.message)
                await self.record_durably(failed)
                raise
            except (TransientError, FatalProviderError) as exc:
                if isinstance(exc, FatalProviderError):  # before anything yields: stop submitting
                    self.stats.fatal = self.stats.fatal or exc
                # never reached the server, or refused as a whole: nothing was bought. Forget
                # it now, so an interrupted backoff before the next attempt leaves no unknown
                await self.record_durably(journal_record("forget", fp))
                raise
            answer = {"attempt": attempt, "ids": list(created.ids), "credits": created.credits}
            await self.record_durably(journal_record("created", fp, **answer))
        return created

    # ------------------------------------------------------------------ polling
    async def _poll_loop(self) -> None:
        rng = random.Random()
        while True:
            if not self.tracked:
                if not self._submitting and not self._creating:
                    return
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            await anyio.sleep(self.limits.poll_interval * rng.uniform(0.9, 1.1))
            await self._poll_once()

    async def _poll_once(self) -> None:
        where: dict[str, tuple[str, int]] = {}
        for fp, t in self.tracked.items():
            for i, rid in enumerate(t.ids):
                if t.status[i] not in TERMINAL_STATUSES or t.urls[i] is None:
                    where[rid] = (fp, i)
        ids = list(where)
        seen: set[str] = set()
        for start in range(0, len(ids), self.limits.poll_batch):
            chunk = ids[start : start + self.limits.poll_batch]
            try:
                self.stats.requests += 1
                results = await retry.call(self._results_of(chunk), self.request_limiter)
            except FatalProviderError as exc:
                self.stats.fatal = self.stats.fatal or exc
                self.emit(Event(EventKind.FATAL, "", exc.message))
                self.tracked.clear()  # they stay `submitted` in the lock: the next run resumes
                return
            except ProviderError as exc:
                self.emit(Event(EventKind.THROTTLED, "", f"polling: {exc.message}"))
                return
            for r in results:
                if r.id in where:
                    seen.add(r.id)
                    self._observe(*where[r.id], r)
        self._check_missing(set(ids) - seen)
        self._finish_ready()

    def _results_of(self, ids: list[str]) -> Callable[[], Awaitable[list[Result]]]:
        return lambda: self.provider.results(ids)

    def _observe(self, fp: str, i: int, r: Result) -> None:
        t = self.tracked.get(fp)
        if t is None:
            return
        t.missing = 0
        if r.status == JobStatus.PROCESSING and t.processing_since is None:
            t.processing_since = anyio.current_time()
        if r.status != t.status[i] or (r.video_url and r.video_url != t.urls[i]):
            rec = journal_record("status", fp, i=i, status=int(r.status))
            if r.video_url:
                rec["url"] = r.video_url
                rec["expires_at"] = utc_iso(time.time() + EXPIRY_SECONDS)
            self.record(rec)
            t.status[i], t.urls[i] = r.status, r.video_url or t.urls[i]

    def _check_missing(self, missing: set[str]) -> None:
        lost = []
        for fp, t in self.tracked.items():
            if any(rid in missing for rid in t.ids):
                t.missing += 1
                if t.missing >= LOST_AFTER:
                    lost.append(fp)
        for fp in lost:
            t = self.tracked.pop(fp)
            gone = "the API no longer knows this video (deleted or another account)"
            self.record(journal_record("failed", fp, code=None, message=gone))
            self._done_tracking(t, EventKind.FAILED, "lost remotely")

    def _finish_ready(self) -> None:
        now = anyio.current_time()
        for fp, t in list(self.tracked.items()):
            if all(s in TERMINAL_STATUSES for s in t.status):
                if all(s == JobStatus.SUCCEEDED for s in t.status):
                    if all(t.urls):
                        self.tracked.pop(fp)
                        self._release(t)
                        assert self._tg is not None
                        self._tg.start_soon(self._download, t)
                else:
                    self.tracked.pop(fp)
                    failed = f"the API reported status {JobStatus.FAILED.value} (failed)"
                    self._done_tracking(t, EventKind.FAILED, failed)
            elif (
                t.processing_since is not None
                and now - t.processing_since > self.limits.job_timeout
            ):
                self.tracked.pop(fp)
                self.stats.timed_out += 1
                self._done_tracking(
                    t,
                    EventKind.FAILED,
                    f"still processing after {self.limits.job_timeout:.0f} s; "
                    "left running remotely, a rerun resumes it",
                )

    def _release(self, t: Tracked) -> None:
        if t.slot:
            t.slot = False
            self.slots.release()

    def _done_tracking(self, t: Tracked, kind: EventKind, why: str) -> None:
        self._release(t)
        if kind is EventKind.FAILED:
            self.stats.failed += 1
        self.emit(Event(kind, t.spec.id, why))

    # ------------------------------------------------------------------ files
    async def _download(self, t: Tracked) -> None:
        try:
            await self.delivery.download(t.spec, t.ids, t.urls)
        except (DownloadError, ProviderError) as exc:  # the re-query of an expired URL may fail
            self.stats.failed += 1
            self.emit(Event(EventKind.FAILED, t.spec.id, exc.message))
            return
        self.stats.done += 1
        self.emit(Event(EventKind.DONE, t.spec.id, plural(t.spec.variants, "file")))

    async def _relocate(self, spec: JobSpec) -> None:
        try:
            await self.delivery.relocate(spec)
        except OSError as exc:
            self.stats.failed += 1
            self.emit(
                Event(
                    EventKind.FAILED,
                    spec.id,
                    f"could not copy the file ({exc}); a rerun downloads it instead",
                )
            )
            return
        self.stats.done += 1
        self.emit(Event(EventKind.DONE, spec.id, "copied to its new path"))
