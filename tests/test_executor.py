"""The executor against a FakeProvider (the seam the style guide asks tests to fake):
timeouts count processing time only, fatal errors stop submitting but let in-flight jobs finish,
and the journal holds exactly what happened."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from i2v_pipeline.errors import FatalProviderError
from i2v_pipeline.model import Action, Event, EventKind, ImageRef, JobSpec, PlanItem
from i2v_pipeline.run.executor import Executor
from i2v_pipeline.run.providers.base import Created, Result
from i2v_pipeline.spec.campaign import Limits
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


async def run(
    tmp_path: Path, provider: FakeProvider, n: int, **limits: Any
) -> tuple[Executor, list[Event]]:
    events: list[Event] = []
    lock = tmp_path / "m.lock.yaml"
    journal = Journal(journal_path(lock))
    base = Limits(create_rps=1000, request_rps=1000, poll_interval=0.01)
    async with aiohttp.ClientSession() as session:
        ex = Executor(
            provider=provider,
            session=session,
            entries={},
            journal=journal,
            limits=dataclasses.replace(base, **limits),
            base_dir=tmp_path,
            prefix=".",
            request_for=lambda s: dict(s.request),
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
