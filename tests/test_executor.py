"""The executor against a FakeProvider (the seam the style guide asks tests to fake):
timeouts count processing time only, fatal errors stop submitting but let in-flight jobs finish,
and the journal holds exactly what happened."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from i2v_pipeline.errors import FatalProviderError, TransientError
from i2v_pipeline.model import Action, Event, EventKind, ImageRef, JobSpec, JobStatus, PlanItem
from i2v_pipeline.run.delivery import Delivery
from i2v_pipeline.run.download import Policy
from i2v_pipeline.run.executor import Executor
from i2v_pipeline.run.pacing import RateLimiter
from i2v_pipeline.run.providers.base import Created, CreateRequest, Provider, Result
from i2v_pipeline.run.recorder import Recorder
from i2v_pipeline.run.session import requery_with
from i2v_pipeline.spec.settings import Limits
from i2v_pipeline.state.journal import Journal, journal_path
from i2v_pipeline.state.lock import load_state

pytestmark = pytest.mark.anyio


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
    request_limiter = RateLimiter(limits.request_rps)
    delivery = Delivery(
        session=session,
        base_dir=base_dir,
        prefix=".",
        entries=recorder.entries,
        record=recorder.record,
        requery=requery_with(provider, request_limiter),
        concurrent=limits.downloads,
        policy=Policy(),
    )
    return Executor(
        provider=provider,
        recorder=recorder,
        delivery=delivery,
        limits=limits,
        request_for=lambda s: CreateRequest(s.request, s.image.value),
        request_limiter=request_limiter,
        **kw,
    )


async def run(
    tmp_path: Path, provider: FakeProvider, n: int, **limits: Any
) -> tuple[Executor, list[Event]]:
    events: list[Event] = []
    lock = tmp_path / "m.lock.yaml"
    journal = Journal(journal_path(lock))
    base = Limits(create_rps=1000, request_rps=1000, poll_interval=0.01)
    async with aiohttp.ClientSession() as session:
        ex = executor(
            provider,
            session,
            journal,
            dataclasses.replace(base, **limits),
            tmp_path,
            on_event=events.append,
        )
        await ex.run(items(n))
    journal.close()
    return ex, events


async def test_processing_timeout_leaves_job_to_resume(tmp_path: Path) -> None:
    """A job processing past job_timeout is reported, and stays `submitted` for a rerun."""
    ex, events = await run(tmp_path, FakeProvider([2]), 1, job_timeout=0.05)
    assert ex.stats.timed_out == 1
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
    ex, events = await run(tmp_path, FakeProvider(script), 1, job_timeout=0.1)
    assert ex.stats.timed_out == 0
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
        self.left = open_for
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
                while not (provider.entered.is_set() or limiter.waiting >= n - provider.creates):
                    await anyio.sleep(0.001)
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
