"""glibc's malloc arenas capped for a run (run/memory.py): a long run's memory stays flat."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import anyio
import pytest

from i2v_pipeline.cli.common import Selection, plan_campaign
from i2v_pipeline.run import memory
from i2v_pipeline.run import session as session_mod
from i2v_pipeline.run.session import RunSession, credentials
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.state.plan import PlanOptions

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import MANIFEST


def test_run_caps_malloc_arenas(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session's run caps the arenas before its worker threads start."""
    calls: list[int] = []
    monkeypatch.setattr(session_mod, "steady_malloc", lambda: calls.append(1))
    campaign = load_campaign(write_manifest(MANIFEST.format(url=emulator.base_url)))
    planned = plan_campaign(campaign, PlanOptions(), Selection())
    work = [i for i in planned.items if i.action.is_work]
    session = RunSession(
        campaign,
        planned.entries,
        prefix=planned.prefix,
        base_url=emulator.base_url,
        auth=credentials(campaign),
    )
    session.stop()
    anyio.run(session.run, work)
    assert calls == [1]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)
def test_limit_arenas_sets_glibc_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    """On glibc mallopt(M_ARENA_MAX) is called and accepted."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.limit_arenas() is True


def test_user_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MALLOC_ARENA_MAX the user set is left alone."""
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert memory.limit_arenas() is False


def test_not_glibc_leaves_malloc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off Linux (macOS, Windows) nothing is called."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.limit_arenas() is False
