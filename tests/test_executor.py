"""The executor against a FakeProvider (the seam the style guide asks tests to fake):
timeouts count processing time only, fatal errors stop submitting but let in-flight jobs finish,
and the journal holds exactly what happened."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import aiohttp
import anyio
import pytest

from i2v_pipeline.errors import FatalProviderError, TransientError
from i2v_pipeline.model import Action, Event, EventKind, ImageRef, JobSpec, JobStatus, PlanItem
from i2v_pipeline.run import offload
from i2v_pipeline.run.delivery import Delivery
from i2v_pipeline.run.download import Policy
from i2v_pipeline.run.executor import Executor
from i2v_pipeline.run.pacing import lanes
from i2v_pipeline.run.providers.base import Created, CreateRequest, Provider, Result
from i2v_pipeline.run.recorder import Recorder
from i2v_pipeline.run.retry import RetryPolicy
from i2v_pipeline.run.session import requery_with
from i2v_pipeline.spec.settings import Limits
from i2v_pipeline.state.journal import Journal, journal_path
from i2v_pipeline.state.lock import load_state

pytestmark = pytest.mark.anyio
T = TypeVar("T")


class FakeProvider:
    """Jobs whose status script is given per create; `fatal_after` creates then 1104."""

    def __init__(self, script: list[int], fatal_after: int | None = None) -> None:
        self.script = script
        self.fatal_after = fatal_after
        self.creates = 0
        self.polls: dict[str, int] = {}

    async def create(self, request: Mapping[str, Any]) -> Created:
        if self.fatal_after is not None and self.creates >= self.fatal_after:
            raise FatalProviderError("AKOOL code 1104: Insufficient credit balance", code=1104)
        self.creates += 1
        return Created((f"r{self.creates}",), 20)

    async def results(self, ids: Sequence[str]) -> list[Result]:
        out = []
        for rid in ids:
            n = self.polls[rid] = self.polls.get(rid, 0) + 1
            status = self.script[min(n, len(self.script)) - 1]
            out.append(Result(rid, status, None))
        return out

    async def delete(self, ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        return list(ids), {}

    async def models(self) -> list[dict[str, Any]]:
        return []

    async def effects(self) -> list[dict[str, Any]]:
        return []

    async def credit(self) -> float:
        return 0.0


async def inline_sync(fn: Callable[[], T]) -> T:
    return fn()


async def all_blocked() -> None:
    """anyio.wait_all_tasks_blocked without its 0.1 s naps (asyncio only, as these tests)."""
    me = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        waiting = (getattr(t, "_fut_waiter", None) for t in asyncio.all_tasks() if t is not me)
        if all(w is not None and not w.done() for w in waiting):
            return


class AutoClock:
    """A fake clock that jumps to the next sleeper's wake time whenever every task is blocked:
    timeouts and poll intervals of minutes run in milliseconds, in order."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        woken = anyio.Event()
        heapq.heappush(self._sleepers, (self.t + max(seconds, 0.0), next(self._seq), woken))
        await woken.wait()

    async def drive(self) -> None:
        while True:
            await all_blocked()
            if self._sleepers:
                when, _, woken = heapq.heappop(self._sleepers)
                self.t = max(self.t, when)
                woken.set()
            else:  # everything waits on a thread (a journal fsync): let it finish
                await anyio.sleep(0.001)


def items(n: int) -> list[PlanItem]:
    img = ImageRef("url", "https://x/a.png", "https://x/a.png")
    out = []
    for i in range(n):
        spec = JobSpec(
            id=f"j{i}",
            image=img,
            request={"prompt": f"p{i}", "count": 1},
            output=f"j{i}.mp4",
            fingerprint=f"{i:064x}",
        )
        out.append(PlanItem(Action.CREATE, spec.id, spec.fingerprint, "new job", spec, credits=20))
    return out


def executor(
    provider: Provider,
    session: aiohttp.ClientSession,
    journal: Journal,
    limits: Limits,
    base_dir: Path,
    **kw: Any,
) -> Executor:
    """An executor wired as RunSession wires one, over provider and journal."""
    recorder = Recorder(journal, {})
    create_lane, request_lane = lanes(
        limits.create_rps, limits.request_rps, limits.shared_budget, kw.get("now"), kw.get("sleep")
    )
    kw.setdefault("create_limiter", create_lane)
    delivery = Delivery(
        session=session,
        base_dir=base_dir,
        prefix=".",
        entries=recorder.entries,
        record=recorder.record,
        requery=requery_with(provider, request_lane),
        concurrent=limits.downloads,
        policy=Policy(),
    )
    return Executor(
        provider=provider,
        recorder=recorder,
        delivery=delivery,
        limits=limits,
        request_for=lambda s: CreateRequest(s.request, s.image.value),
        request_limiter=request_lane,
        **kw,
    )


async def run(
    tmp_path: Path, provider: FakeProvider, n: int, clock: AutoClock | None = None, **limits: Any
) -> tuple[Executor, list[Event]]:
    """Run n creates on a fake clock: limits are in fake seconds (the default poll is 5 s)."""
    events: list[Event] = []
    lock = tmp_path / "m.lock.yaml"
    journal = Journal(journal_path(lock))
    clock = clock or AutoClock()
    base = Limits(create_rps=20, request_rps=20)
    # journal writes inline instead of in a thread: a task waiting on a thread looks blocked,
    # and the fake clock would jump while an fsync is under way
    inline = mock.patch.object(anyio.to_thread, "run_sync", inline_sync)
    with inline, mock.patch.object(offload, "run_blocking", inline_sync):
        async with aiohttp.ClientSession() as session, anyio.create_task_group() as tg:
            tg.start_soon(clock.drive)
            ex = executor(
                provider,
                session,
                journal,
                dataclasses.replace(base, **limits),
                tmp_path,
                on_event=events.append,
                now=clock.now,
                sleep=clock.sleep,
            )
            with anyio.fail_after(10):  # wall-clock seconds: the fake ones cost none
                await ex.run(items(n))
            tg.cancel_scope.cancel()
    journal.close()
    return ex, events


async def test_processing_timeout_leaves_job_to_resume(tmp_path: Path) -> None:
    """A job processing past job_timeout is reported, and stays `submitted` for a rerun."""
    clock = AutoClock()
    ex, events = await run(tmp_path, FakeProvider([2]), 1, clock, job_timeout=1800)
    assert ex.stats.timed_out == 1
    assert 1800 < clock.t < 1800 + 5 * 60  # found out within a few polls of the deadline
    assert [e.kind for e in events] == [EventKind.SUBMITTED, EventKind.FAILED]
    assert "rerun resumes it" in events[-1].detail
    (entry,) = load_state(tmp_path / "m.lock.yaml").values()
    assert entry.state == "submitted" and entry.remote_ids == ("r1",)


class UnusableUrlProvider(FakeProvider):
    """Every video ends done (status 3) with a result URL the provider refused."""

    async def results(self, ids: Sequence[str]) -> list[Result]:
        why = "the API gave a result URL that is not http(s): file:…"
        return [Result(rid, JobStatus.SUCCEEDED, None, url_problem=why) for rid in ids]


async def test_done_with_unusable_url_fails_the_job(tmp_path: Path) -> None:
    """Done with a refused URL fails the job at once, with the reason, in the lock; no timeout."""
    with anyio.fail_after(10):  # before the fix such a job was polled forever
        ex, events = await run(tmp_path, UnusableUrlProvider([3]), 1, job_timeout=0.05)
    assert ex.stats.timed_out == 0 and ex.stats.failed == 1
    assert [e.kind for e in events] == [EventKind.SUBMITTED, EventKind.FAILED]
    assert events[-1].detail == "the API gave a result URL that is not http(s): file:…"
    (entry,) = load_state(tmp_path / "m.lock.yaml").values()
    assert entry.state == "failed" and entry.remote_status == (3,)
    assert entry.error is not None and "not http(s): file:…" in entry.error.message


async def test_queue_time_does_not_count(tmp_path: Path) -> None:
    """Queued (status 1) longer than job_timeout is fine; the clock starts at status 2."""
    script = [1] * 20 + [2, 4]
    clock = AutoClock()
    ex, events = await run(tmp_path, FakeProvider(script), 1, clock, job_timeout=10)
    assert ex.stats.timed_out == 0
    assert clock.t > 2 * 10  # queued far longer than job_timeout
    assert events[-1].kind is EventKind.FAILED and "status 4" in events[-1].detail
    (entry,) = load_state(tmp_path / "m.lock.yaml").values()
    assert entry.state == "failed"


async def test_fatal_stops_submitting_in_flight_finish(tmp_path: Path) -> None:
    """Out of credits: no more creates, the ones in flight are still polled to the end."""
    ex, events = await run(tmp_path, FakeProvider([2, 4], fatal_after=2), 6, jobs_in_flight=2)
    assert ex.stats.fatal is not None and ex.stats.fatal.code == 1104
    assert ex.stats.created == 2 and ex.stats.skipped >= 1
    entries = load_state(tmp_path / "m.lock.yaml")
    # the refused create was forgotten (nothing bought); the two in flight reached an end
    assert sorted(e.state for e in entries.values()) == ["failed", "failed"]
    assert any(e.kind is EventKind.FATAL for e in events)


class GateLimiter:
    """A create limiter that lets `open_for` requests through, then holds every later one."""

    def __init__(self, open_for: int) -> None:
        self.left = self.opened = open_for
        self.waiting = 0

    async def acquire(self) -> None:
        if self.left > 0:
            self.left -= 1
            return
        self.waiting += 1
        await anyio.sleep_forever()

    def throttled(self, retry_after: float | None = None) -> None:
        pass

    def succeeded(self) -> None:
        pass


class HeldProvider(FakeProvider):
    """Creates wait for `release` (an answer on its way when the run is cancelled); the
    first `transient` creates fail as never sent."""

    def __init__(self, transient: int = 0, hold: bool = False) -> None:
        super().__init__([1])
        self.transient, self.hold = transient, hold
        self.sent = 0
        self.entered, self.release = anyio.Event(), anyio.Event()

    async def create(self, request: Mapping[str, Any]) -> Created:
        self.sent += 1
        if self.transient:
            self.transient -= 1
            raise TransientError("connection refused")
        if self.hold:
            self.entered.set()
            await self.release.wait()
        return await super().create(request)


async def cancelled_run(
    tmp_path: Path, provider: HeldProvider, limiter: GateLimiter, n: int
) -> dict[str, str]:
    """Run n creates, cancel once the provider holds one or the limiter holds the rest; return
    the states the journal then records, by job id."""
    lock = tmp_path / "m.lock.yaml"
    journal = Journal(journal_path(lock))
    limits = Limits(create_rps=1000, request_rps=1000, poll_interval=0.01, jobs_in_flight=n)
    async with aiohttp.ClientSession() as session:
        ex = executor(provider, session, journal, limits, tmp_path, create_limiter=limiter)
        with anyio.CancelScope() as scope, anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ex.run, items(n))
                # creates take their rate slot one at a time: one waits, the rest never started
                held = limiter.waiting and provider.sent >= limiter.opened
                while not (provider.entered.is_set() or held):
                    await anyio.sleep(0.001)
                    held = limiter.waiting and provider.sent >= limiter.opened
                scope.cancel()
                provider.release.set()
    journal.close()
    return {e.job_id: e.state for e in load_state(lock).values()}


async def test_creates_waiting_on_the_limiter_are_not_unknown(tmp_path: Path) -> None:
    """Cancelled while creates wait on the rate limiter: only the creates sent are recorded."""
    provider = HeldProvider()
    states = await cancelled_run(tmp_path, provider, GateLimiter(2), 5)
    assert provider.sent == 2
    assert states == {"j0": "submitted", "j1": "submitted"}


async def test_create_in_flight_at_cancel_records_its_answer(tmp_path: Path) -> None:
    """A create on the wire when the run is cancelled still gets its answer journaled."""
    provider = HeldProvider(hold=True)
    states = await cancelled_run(tmp_path, provider, GateLimiter(1), 3)
    assert provider.sent == 1
    assert states == {"j0": "submitted"}


async def test_unsent_create_interrupted_in_backoff_is_not_unknown(tmp_path: Path) -> None:
    """A create refused before it reached the server, cancelled before its retry: no unknown."""
    provider = HeldProvider(transient=1)
    states = await cancelled_run(tmp_path, provider, GateLimiter(1), 1)
    assert provider.sent == 1
    assert states == {}


class TimedProvider(FakeProvider):
    """Each job ends `seconds` of fake time after its create (status 4, so no download);
    counts the resultsByIds requests and the ids they ask for."""

    def __init__(self, clock: AutoClock, seconds: float) -> None:
        super().__init__([1])
        self.clock, self.seconds = clock, seconds
        self.born: dict[str, float] = {}
        self.polls_sent = 0

    async def create(self, request: Mapping[str, Any]) -> Created:
        created = await super().create(request)
        self.born[created.ids[0]] = self.clock.t
        return created

    async def results(self, ids: Sequence[str]) -> list[Result]:
        self.polls_sent += 1
        done = lambda rid: self.clock.t - self.born[rid] >= self.seconds  # noqa: E731
        return [Result(rid, 4 if done(rid) else 1, None) for rid in ids]


async def test_polls_follow_expected_finish_times(tmp_path: Path) -> None:
    """200 jobs of 5 s at 20 creates/s: polls are batched on due times, a few per second at
    most, and the run ends within about a second of N/R + T (a fixed 5 s poll would not)."""
    clock = AutoClock()
    provider = TimedProvider(clock, 5.0)
    ex, _ = await run(tmp_path, provider, 200, clock)
    assert ex.stats.failed == 200  # every job reached its end (status 4)
    assert provider.polls_sent <= 200 * 0.1
    assert clock.t <= 200 / 20 + 5 + 1.5
    assert 4.5 <= ex.schedule.expected <= 5.5  # learned, not ratcheted up by poll lateness


async def test_notice_names_jobs_in_flight_when_it_binds(tmp_path: Path) -> None:
    """A jobs_in_flight below rate x job time holds creates back: the run says so, once,
    naming the setting; the default cap does not bind."""
    clock = AutoClock()
    _, events = await run(tmp_path, TimedProvider(clock, 5.0), 60, clock, jobs_in_flight=5)
    notices = [e for e in events if e.kind is EventKind.NOTICE]
    assert len(notices) == 1 and "limits.jobs_in_flight (5)" in notices[0].detail
    clock = AutoClock()
    (tmp_path / "b").mkdir()
    _, events = await run(tmp_path / "b", TimedProvider(clock, 5.0), 60, clock)
    assert not [e for e in events if e.kind is EventKind.NOTICE]


async def test_an_unreachable_api_stops_the_run_without_failing_jobs(tmp_path: Path) -> None:
    """Creates that never reach the API through every retry stop the run (fatal, nothing bought):
    the job is not sent, not failed, and no create is tried past its own retries."""
    provider = HeldProvider(transient=10**6)
    ex, events = await run(tmp_path, provider, 5)
    assert ex.stats.fatal is not None and "kept failing" in ex.stats.fatal.message
    assert ex.stats.failed == 0 and ex.stats.created == 0
    assert ex.stats.skipped == 5
    assert not any(e.kind is EventKind.FAILED for e in events)
    assert provider.sent == 5 * RetryPolicy().attempts  # each create's retries, no more
