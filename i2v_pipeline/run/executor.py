"""Execute a plan: create through the batch endpoint, one polling loop for the whole run,
streamed downloads, and a journal record for every state change. Emits events; never prints.

Money rules (design §2): an `intent` is fsynced when a create is about to leave (after the rate
limiter, the retry backoff and the slot, so an interrupted wait is never an unknown) and `created`
is written right after the answer (flushed at once, fsynced by the next group commit). A create
is retried only when it provably never reached the server or the server said to retry; an
answer lost in transit leaves an unknown, never a second create.
"""

from __future__ import annotations

import math
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
    StoreError,
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
from .audio_stage import AudioStage
from .delivery import Delivery
from .pacing import Lane, Now, RateLimiter, Sleep, lanes
from .providers.base import Created, CreateRequest, Provider, Result
from .recorder import Recorder
from .schedule import PollSchedule

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
        create_limiter: RateLimiter | Lane | None = None,
        request_limiter: RateLimiter | Lane | None = None,
        stop: anyio.Event | None = None,
        now: Now | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        """now/sleep: the clock of pacing, polling and timeouts (tests pass a fake one)."""
        self.provider, self.delivery, self.limits = provider, delivery, limits
        self.entries = recorder.entries
        self.record, self.record_durably = recorder.record, recorder.record_durably
        self.request_for, self.emit = request_for, on_event
        self.max_credits = max_credits if max_credits is not None else limits.max_credits
        self._now: Now = now or time.monotonic  # the asyncio loop's clock
        self._sleep: Sleep = sleep or anyio.sleep
        own_create, own_request = lanes(
            limits.create_rps, limits.request_rps, limits.shared_budget, now, sleep
        )
        self.create_limiter: RateLimiter | Lane = create_limiter or own_create
        self.request_limiter: RateLimiter | Lane = request_limiter or own_request
        self.slots = anyio.Semaphore(limits.jobs_in_flight)
        # polls at most every poll_interval/5 (1 s by default) while many jobs are due, so
        # finishes are batched; twice that while creates still compete for the budget
        gap = min(1.0, limits.poll_interval / 5)
        self.schedule = PollSchedule(limits.poll_interval, gap, limits.poll_interval)
        self._last_poll = float("-inf")
        self._more_due = False
        self._noticed = False
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
        self.audio = AudioStage(self)
        """The audio stage (run/audio_stage.py): it hears the videos' outcomes through emit."""
        self.emit = self.audio.watch(self.emit)

    # ------------------------------------------------------------------ run
    async def run(self, items: Sequence[PlanItem]) -> RunStats:
        """Create, resume, download or relocate every item; return what happened."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._poll_loop)
            self.audio.start(tg, items)
            creates: list[PlanItem] = []
            from_store: list[JobSpec] = []
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
                elif item.action is Action.STORE:
                    from_store.append(spec)
            # beside the creates, and before polling may end: a failed fetch falls back on the API
            async with anyio.create_task_group() as fetches:
                for spec in from_store:
                    fetches.start_soon(self._from_store, spec)
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
        # created by an earlier run: its webhook went there, so poll it as without webhooks
        self.schedule.add(spec.fingerprint, self._now(), at_once=True, webhook=False)
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
            full = self.slots.value == 0
            await self.slots.acquire()
            if full:
                self._slots_bind()
            # the create's rate slot is taken here, one at a time: creates queued inside the
            # limiter would book every slot ahead and a poll would wait behind all of them
            await self.create_limiter.acquire()
            if self.stop.is_set() or self.stats.fatal:  # it may have come while we waited
                self.slots.release()
                self._skip(items[n:], "the run stopped submitting")
                return
            spent += item.credits
            assert item.spec is not None
            self._creating += 1
            self._tg.start_soon(self._create_tracked, item.spec)

    def _slots_bind(self) -> None:
        """Say once that jobs_in_flight, not the rate, is what holds submission back."""
        # a slot came free and the pacer would send within half a second (a poll may have
        # just taken the account's slot): the cap, not the rate, held this create back
        if self._noticed or not self.create_limiter.idle(within=0.5):
            return
        self._noticed = True
        cap, rate = self.limits.jobs_in_flight, self.limits.create_rps
        need = math.ceil(rate * (self.schedule.expected + 2 * self.schedule.min_gap))
        self.emit(
            Event(
                EventKind.NOTICE,
                "",
                f"limits.jobs_in_flight ({cap}) holds creates below create_rps ({rate:g}/s): "
                f"jobs take about {self.schedule.expected:.0f} s, so the rate needs about "
                f"{need} in flight; raise limits.jobs_in_flight to use the full rate",
            )
        )

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
            created = await retry.call(send, self.create_limiter, sleep=self._sleep, paced=True)
        except UnknownOutcomeError as exc:
            self.stats.unknown += 1
            self.emit(Event(EventKind.UNKNOWN, spec.id, exc.message))
            self.slots.release()
            return
        except (FatalProviderError, TransientError, JobRejectedError) as exc:
            if isinstance(exc, TransientError):  # every retry failed: the API is down or
                exc = self._unreachable(exc)  # unreachable, and the next create would fail alike
                self.stats.skipped += 1
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
        self.schedule.add(fp, self._now())
        self.emit(Event(EventKind.SUBMITTED, spec.id, plural(n, "video"), created.credits or 0))
        self._wake.set()

    @staticmethod
    def _unreachable(exc: TransientError) -> FatalProviderError:
        """A create whose retries all failed never reached a working API (its intent is
        forgotten): not a failed job but a run that cannot go on; nothing was bought."""
        return FatalProviderError(
            f"the API kept failing, so the run stopped submitting ({exc.message})",
            hint="check provider.endpoint and the network, then run again: "
            "what was not sent is planned again, nothing was bought for it",
        )

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
            # with the intent's id and request: if the intent's line is damaged, this alone
            # still resumes the job (journal.apply) instead of buying it again. Flushed at
            # once (a kill keeps it); fsynced with the next intent (run/recorder.py)
            answer = {**intent, "ids": list(created.ids), "credits": created.credits}
            self.record(journal_record("created", fp, **answer))
        return created

    # ------------------------------------------------------------------ polling
    async def _poll_loop(self) -> None:
        while True:
            if not self.tracked:
                if not self._submitting and not self._creating and not self.audio.busy:
                    return
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            now = self._now()
            earliest = self.schedule.earliest()
            at = max(earliest if earliest is not None else now, self._last_poll + self._gap())
            if at > now:
                # capped: a job tracked meanwhile (resumed, or the estimate shrank) is seen
                await self._sleep(min(at - now, self.limits.poll_interval, self.schedule.nap))
                continue
            await self._poll_once()

    def _gap(self) -> float:
        """Seconds between polls: none while due jobs wait for a batch, longer while creates
        still compete for the account's budget (polls then only feed downloads)."""
        if self._more_due:
            return 0.0
        gap = self.schedule.min_gap
        return 2 * gap if self._submitting else gap / 2

    async def _poll_once(self) -> None:
        now = self._now()
        self._last_poll = now
        sizes = {fp: len(t.ids) for fp, t in self.tracked.items()}
        picked, self._more_due = self.schedule.pick(now, self.limits.poll_batch, sizes)
        where: dict[str, tuple[str, int]] = {}
        for fp in picked:
            t = self.tracked[fp]
            for i, rid in enumerate(t.ids):
                if t.status[i] not in TERMINAL_STATUSES or t.urls[i] is None:
                    where[rid] = (fp, i)
        if not where:
            return
        try:
            self.stats.requests += 1
            call = self._results_of(list(where))
            results = await retry.call(call, self.request_limiter, sleep=self._sleep)
        except FatalProviderError as exc:
            self.stats.fatal = self.stats.fatal or exc
            self.emit(Event(EventKind.FATAL, "", exc.message))
            for fp in self.tracked:
                self.schedule.forget(fp)
            self.tracked.clear()  # they stay `submitted` in the lock: the next run resumes
            return
        except ProviderError as exc:
            self.emit(Event(EventKind.THROTTLED, "", f"polling: {exc.message}"))
            return
        seen: set[str] = set()
        for r in results:
            if r.id in where:
                seen.add(r.id)
                self._observe(*where[r.id], r)
        self._check_missing(set(where) - seen)
        self._finish_ready()
        now = self._now()
        for fp in picked:
            if fp in self.tracked:
                self.schedule.unfinished(fp, now)

    def _results_of(self, ids: list[str]) -> Callable[[], Awaitable[list[Result]]]:
        return lambda: self.provider.results(ids)

    def _observe(self, fp: str, i: int, r: Result) -> None:
        t = self.tracked.get(fp)
        if t is None:
            return
        t.missing = 0
        if t.status[i] in TERMINAL_STATUSES and r.status != t.status[i]:
            return  # a poll sent before a webhook's finish came: a finish is never undone
        if r.status == JobStatus.PROCESSING and t.processing_since is None:
            t.processing_since = self._now()
        if r.status != t.status[i] or (r.video_url and r.video_url != t.urls[i]):
            rec = journal_record("status", fp, i=i, status=int(r.status))
            if r.video_url:
                rec["url"] = r.video_url
                rec["expires_at"] = utc_iso(time.time() + EXPIRY_SECONDS)
            self.record(rec)
            t.status[i], t.urls[i] = r.status, r.video_url or t.urls[i]
        if r.url_problem is not None:  # done, but nothing we may download: the job has failed
            self.tracked.pop(fp)
            self.record(journal_record("failed", fp, code=None, message=r.url_problem))
            self._done_tracking(t, EventKind.FAILED, r.url_problem)

    def pushed(self, r: Result) -> bool:
        """A status a webhook brought (run/webhook_receiver.py), applied as a poll's result is;
        False when no job in flight has that id. Deliveries may come out of order: a status
        is never taken back, so an older one than we know is ignored."""
        for fp, t in self.tracked.items():
            if r.id in t.ids:
                i = t.ids.index(r.id)
                if t.status[i] not in TERMINAL_STATUSES and r.status >= t.status[i]:
                    self._observe(fp, i, r)
                    self._finish_ready()
                return True
        return False

    @property
    def creating(self) -> bool:
        """Creates are on the wire: an id not tracked yet may be theirs."""
        return self._creating > 0

    def _check_missing(self, missing: set[str]) -> None:
        lost = []
        for fp, t in self.tracked.items():
            if any(rid in missing for rid in t.ids):
                t.missing += 1
                if t.missing >= LOST_AFTER:
                    lost.append(fp)
        for fp in lost:
            t = self.tracked.pop(fp)
            self.schedule.forget(fp)
            gone = "the API no longer knows this video (deleted or another account)"
            self.record(journal_record("failed", fp, code=None, message=gone))
            self._done_tracking(t, EventKind.FAILED, "lost remotely")

    def _finish_ready(self) -> None:
        now = self._now()
        for fp, t in list(self.tracked.items()):
            if all(s in TERMINAL_STATUSES for s in t.status):
                if all(s == JobStatus.SUCCEEDED for s in t.status):
                    if all(t.urls):
                        self.tracked.pop(fp)
                        self.schedule.finished(fp, now)
                        self._release(t)
                        assert self._tg is not None
                        self._tg.start_soon(self._download, t)
                else:
                    self.tracked.pop(fp)
                    self.schedule.finished(fp, now)
                    failed = f"the API reported status {JobStatus.FAILED.value} (failed)"
                    self._done_tracking(t, EventKind.FAILED, failed)
            elif (
                t.processing_since is not None
                and now - t.processing_since > self.limits.job_timeout
            ):
                self.tracked.pop(fp)
                self.schedule.forget(fp)
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
        if self.audio.owns(t):
            await self.audio.download(t)
            return
        try:
            await self.delivery.download(t.spec, t.ids, t.urls)
        except (DownloadError, ProviderError) as exc:  # the re-query of an expired URL may fail
            self.stats.failed += 1
            self.emit(Event(EventKind.FAILED, t.spec.id, exc.message))
            return
        self.stats.done += 1
        self.emit(Event(EventKind.DONE, t.spec.id, plural(t.spec.variants, "file")))

    async def _from_store(self, spec: JobSpec) -> None:
        try:
            await self.delivery.from_store(spec)
        except StoreError as exc:  # missing or refused: the API may still hold the result
            self.emit(Event(EventKind.NOTICE, spec.id, f"{exc.message}; asking the API instead"))
            self._track_existing(spec)
            return
        self.stats.done += 1
        self.emit(Event(EventKind.DONE, spec.id, "fetched from the store"))

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
