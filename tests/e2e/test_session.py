"""The run façade (run/session.py) against the emulator: the CLI runs through it, and its
stop() lets no further create start while the jobs in flight still finish."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli, run_exec
from i2v_pipeline.cli.common import Planned, Selection, compact_lock, plan_campaign
from i2v_pipeline.model import Event, EventKind, PlanItem, RunStats
from i2v_pipeline.run.session import RunSession, credentials
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.state.lock import load_state
from i2v_pipeline.state.plan import PlanOptions

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import MANIFEST


def planned_session(
    manifest: Path, base_url: str, **kw: Any
) -> tuple[RunSession, list[PlanItem], Planned]:
    """The session `i2v run` would build for manifest, the plan's work and the plan."""
    campaign = load_campaign(manifest)
    planned = plan_campaign(campaign, PlanOptions(), Selection())
    work = [i for i in planned.items if i.action.is_work]
    session = RunSession(
        campaign,
        planned.entries,
        prefix=planned.prefix,
        base_url=base_url,
        auth=credentials(campaign),
        **kw,
    )
    return session, work, planned


@pytest.mark.anyio
async def test_stop_lets_no_further_create_start(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """stop() after the first create: the other five are skipped, the first one is delivered."""
    text = MANIFEST.format(url=emulator.base_url).replace(
        "limits: {", "limits: {jobs_in_flight: 1, "
    )
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if event.kind is EventKind.SUBMITTED:
            session.stop()

    session, work, planned = planned_session(
        write_manifest(text), emulator.base_url, on_event=on_event
    )
    stats = await session.run(work)
    compact_lock(planned)
    assert session.stopped and stats is session.stats
    assert (stats.created, stats.done, stats.skipped) == (1, 1, 5)
    assert emulator.creates() == 1
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.SKIPPED) == 5 and kinds.count(EventKind.DONE) == 1
    (entry,) = load_state(planned.campaign.lock_path).values()
    assert entry.state == "succeeded"


def test_stop_before_run_creates_nothing(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A session stopped before it runs (made outside any event loop) sends no create."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    session, work, _ = planned_session(path, emulator.base_url)
    session.stop()
    stats = anyio.run(session.run, work)
    assert (stats.created, stats.skipped) == (0, 6)
    assert emulator.creates() == 0


def test_cli_run_goes_through_the_session(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`i2v run` hands its campaign and plan to one RunSession and reports that session's stats."""
    made: list[RunSession] = []

    class Spy(RunSession):
        async def run(self, items: Sequence[PlanItem]) -> RunStats:
            made.append(self)
            return await super().run(items)

    monkeypatch.setattr(run_exec, "RunSession", Spy)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    result = CliRunner().invoke(cli, ["run", str(path), "--yes", "--json"])
    assert result.exit_code == 0, result.stderr
    (session,) = made
    summary = json.loads(result.stdout)
    assert summary["created"] == session.stats.created == 6
    assert summary["done"] == session.stats.done == 6
    assert not session.stopped
