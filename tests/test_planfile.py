"""Saved plan files: hashes of what a plan was made from, staleness, and exact application."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from i2v_pipeline.errors import InputError, UsageError
from i2v_pipeline.model import Action, ImageRef, JobSpec, PlanItem
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.state import planfile
from i2v_pipeline.state.plan import PlanOptions

IMG = ImageRef("path", "/a.png", "a.png", "1" * 64)


def item(i: int, action: Action = Action.CREATE) -> PlanItem:
    s = JobSpec(id=f"j{i}", image=IMG, request={"prompt": "p", "count": 1}, output=f"j{i}.mp4")
    s = dataclasses.replace(s, fingerprint=f"{i:064x}")
    credits = 20 if action.submits else 0
    return PlanItem(action, s.id, s.fingerprint, "why", s, credits=credits)


def saved(tmp_path: Path, items: list[PlanItem], sources: planfile.Sources) -> planfile.SavedPlan:
    doc = planfile.build(
        items,
        sources=sources,
        version="1.0",
        options=PlanOptions(retry_failed=True),
        selection={"only": None, "select": [], "shard": "1/2", "limit": None},
        budget=None,
        calibrated={items[0].fingerprint},
    )
    path = tmp_path / "p.json"
    planfile.write(path, doc)
    return planfile.read(path)


def sources(tmp_path: Path) -> planfile.Sources:
    (tmp_path / "m.yaml").write_text("version: 1\n")
    catalog = ("bundled", [{"value": "M"}])
    return planfile.sources_of(tmp_path / "m.yaml", tmp_path / "m.lock.yaml", catalog)


def test_plan_file_round_trips_and_matches_its_schema(tmp_path: Path) -> None:
    """What build writes validates against plan.schema.json and reads back with its options
    and the work it authorises (fresh jobs authorise nothing)."""
    plan = saved(tmp_path, [item(1), item(2, Action.FRESH)], sources(tmp_path))
    schemas.validate("plan", dict(plan.doc))
    assert plan.options == PlanOptions(retry_failed=True)
    assert plan.work == {item(1).fingerprint: "create"}
    assert plan.doc["jobs"][0]["estimate"] == "lock"


def test_lock_hash_covers_the_journal(tmp_path: Path) -> None:
    """No lock and no journal: None; a journal left by a stopped run changes the hash."""
    lock = tmp_path / "m.lock.yaml"
    assert planfile.lock_state_sha256(lock) is None
    lock.write_text("version: 1\n")
    before = planfile.lock_state_sha256(lock)
    (tmp_path / "m.lock.yaml.journal").write_text('{"t": "intent"}\n')
    assert planfile.lock_state_sha256(lock) not in (None, before)


def test_changed_sources_name_each_change(tmp_path: Path) -> None:
    """Each of manifest, lock, catalog and i2v version is named when it differs."""
    now = sources(tmp_path)
    plan = saved(tmp_path, [item(1)], now)
    assert planfile.changed_sources(plan, now, "1.0") == []
    changed = dataclasses.replace(
        now, manifest_sha256="0", lock_sha256="1", catalog_sha256="2", catalog="cache X"
    )
    why = planfile.changed_sources(plan, changed, "2.0")
    assert why == [
        "the manifest m.yaml changed",
        "the lock m.lock.yaml changed (a run or prune since?)",
        "the model catalog changed (now cache X)",
        "it was made by i2v 1.0, this is 2.0",
    ]


def test_apply_keeps_exactly_the_planned_work(tmp_path: Path) -> None:
    """Only the saved plan's jobs, in its order; a job now planned otherwise is stale."""
    plan = saved(tmp_path, [item(2), item(1)], sources(tmp_path))
    fresh = [item(1), item(2), item(3)]
    assert [i.job_id for i in planfile.apply(plan, fresh)] == ["j2", "j1"]
    with pytest.raises(planfile.StalePlanError, match="job j1 was planned to create, now fresh"):
        planfile.apply(plan, [item(1, Action.FRESH), item(2)])
    with pytest.raises(planfile.StalePlanError, match="job j2 is no longer planned"):
        planfile.apply(plan, [item(1)])


def test_unreadable_plan_files_are_user_errors(tmp_path: Path) -> None:
    """A missing file, other JSON, or another format version: exit 2 with what to do."""
    with pytest.raises(UsageError, match="does not exist"):
        planfile.read(tmp_path / "nope.json")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": "i2v-plan", "format_version": 9}))
    with pytest.raises(InputError, match="plan format version 9") as info:
        planfile.read(path)
    assert info.value.exit_code == 2


def test_apply_checks_every_listed_job_fresh_ones_too(tmp_path: Path) -> None:
    """A job listed fresh that would now download, another id, or another price: stale."""
    plan = saved(tmp_path, [item(1), item(2, Action.FRESH)], sources(tmp_path))
    assert [i.job_id for i in planfile.apply(plan, [item(1), item(2, Action.FRESH)])] == ["j1"]
    with pytest.raises(planfile.StalePlanError, match="job j2 was planned to fresh, now download"):
        planfile.apply(plan, [item(1), item(2, Action.DOWNLOAD)])
    renamed = dataclasses.replace(item(1), job_id="other")
    with pytest.raises(planfile.StalePlanError, match="job j1 is now job other"):
        planfile.apply(plan, [renamed, item(2, Action.FRESH)])
    dearer = dataclasses.replace(item(1), credits=40)
    with pytest.raises(planfile.StalePlanError, match="planned at 20 credits, now 40"):
        planfile.apply(plan, [dearer, item(2, Action.FRESH)])


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["jobs"][0].update(id="x"),
        lambda d: d["selection"].update(shard=None),
        lambda d: d["options"].update(verify=True),
        lambda d: d.pop(planfile.SEAL),
    ],
)
def test_a_plan_file_edited_by_hand_is_refused(tmp_path: Path, edit: Any) -> None:
    """Any change to the written document (a job, the selection, the options) or a missing
    seal: InputError "was edited", exit 2."""
    plan = saved(tmp_path, [item(1)], sources(tmp_path))
    doc = json.loads(plan.path.read_text())
    edit(doc)
    plan.path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="was edited after `i2v plan` wrote it"):
        planfile.read(plan.path)


def test_write_never_follows_a_symlinked_temporary_name(tmp_path: Path) -> None:
    """A symlink planted where the old fixed temporary name was is left alone, its target
    untouched; the plan file is replaced by rename."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / ".p.json.tmp").symlink_to(victim)
    planfile.write(tmp_path / "p.json", {"a": 1})
    assert victim.read_text() == "keep"
    assert json.loads((tmp_path / "p.json").read_text()) == {"a": 1}
