"""The campaign budget and calibrated estimates: pure functions of lock entries and plan items."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.model import Action, ImageRef, JobSpec, LockEntry, PaidAttempt, PlanItem
from i2v_pipeline.spec.budget import Budget, budget_of, calibrate, exceeded, tally, within
from i2v_pipeline.spec.campaign import load_campaign

MANIFEST = """\
version: 1
name: b
images:
  - url: "https://x.example/a.png"
prompts:
  - id: a
    template: "x"
"""

IMG = ImageRef("path", "/a.png", "a.png", "1" * 64)
REQ = {"model_name": "M", "resolution": "720p", "video_length": 5, "count": 1, "prompt": "p"}


def spec(i: int, **request: Any) -> JobSpec:
    s = JobSpec(id=f"j{i}", image=IMG, request={**REQ, **request}, output=f"j{i}.mp4")
    return dataclasses.replace(s, fingerprint=f"{i:064x}")


def create(i: int, credits: int = 20, **request: Any) -> PlanItem:
    s = spec(i, **request)
    return PlanItem(Action.CREATE, s.id, s.fingerprint, "new job", s, credits=credits)


def entry(i: int, state: str = "succeeded", credits: int | None = 7, **request: Any) -> LockEntry:
    req = {**REQ, **request}
    n = int(req["count"])
    return LockEntry(
        job_id=f"old{i}",
        fingerprint=f"{i + 1000:064x}",
        state=state,  # type: ignore[arg-type]
        attempt="a",
        request_json=json.dumps(req),
        remote_ids=tuple(f"r{i}.{v}" for v in range(n)) if state != "unknown" else (),
        credits=credits,
    )


def by_fp(*entries: LockEntry) -> dict[str, LockEntry]:
    return {e.fingerprint: e for e in entries}


def test_budget_read_from_the_manifest() -> None:
    """`budget: {credits: N}` is a Budget; no budget key is None."""
    assert budget_of({"budget": {"credits": 500}}) == Budget(500)
    assert budget_of({}) is None


def test_estimates_calibrate_per_video_from_matching_charges() -> None:
    """A create like charged ones is estimated at their mean charge per video (rounded up),
    times its variants; one with another duration keeps the price table."""
    entries = by_fp(entry(1, credits=7), entry(2, credits=16, count=2))  # 7, 8 per video
    items, calibrated = calibrate(
        [create(1, count=3), create(2, video_length=10, credits=40)], entries
    )
    assert items[0].credits == 23  # ceil(7.5 * 3)
    assert items[1].credits == 40
    assert calibrated == {items[0].fingerprint}


def test_calibration_ignores_uncharged_entries() -> None:
    """Entries without a recorded charge (unknown, or old locks) do not calibrate."""
    items, calibrated = calibrate([create(1)], by_fp(entry(1, "unknown", credits=None)))
    assert items[0].credits == 20 and calibrated == set()


def test_tally_counts_spent_in_flight_and_planned() -> None:
    """Spent is every recorded charge (orphans too); in flight estimates sent creates with no
    charge yet; planned sums the plan's creates only."""
    entries = by_fp(
        entry(1, credits=30), entry(2, "submitted", credits=None), entry(3, "unknown", None)
    )
    download = PlanItem(Action.DOWNLOAD, "d", "d" * 64, "missing")
    t = tally(entries, [create(1, credits=20), download], Budget(100))
    assert (t.spent, t.in_flight, t.planned, t.total) == (30, 40, 20, 90)
    assert t.over == 0 and t.room == 30
    assert t.describe() == (
        "Budget: 30 spent + 40 in flight + 20 planned (estimate) = 90 of 100 credits"
    )
    tight = tally(entries, [create(1, credits=20)], Budget(80))
    assert tight.over == 10 and tight.describe().endswith("; 10 over budget")


def test_tally_counts_creates_a_lock_merge_kept_as_also_paid() -> None:
    """A create paid in another clone (also_paid, kept by `i2v lock merge`) is spent too."""
    twice = dataclasses.replace(entry(1, credits=30), also_paid=(PaidAttempt("b", ("x",), 25),))
    assert tally(by_fp(twice), [], Budget(100)).spent == 55


def test_within_stops_at_the_first_create_that_does_not_fit() -> None:
    """Creates go in plan order until the next would pass the room (as --max-credits stops);
    downloads always go; no budget keeps everything."""
    download = PlanItem(Action.DOWNLOAD, "d", "d" * 64, "missing")
    items = [create(1, credits=20), create(2, credits=20), download, create(3, credits=5)]
    allowed, held = within(items, 30)
    assert allowed == [items[0], download] and held == [items[1], items[3]]
    assert within(items, None) == (items, [])


def test_exceeded_says_by_how_much() -> None:
    """The error names the budget, the excess and what was not sent, with exit 3."""
    t = tally({}, [create(1, credits=20), create(2, credits=20)], Budget(30))
    error = exceeded(t, [create(2, credits=20)])
    assert error.exit_code == 3
    assert "budget.credits 30 would be passed by 10 credits" in error.message
    assert "1 create (~20 credits) not sent" in error.message


def test_budget_schema_errors_are_plain_words(tmp_path: Path) -> None:
    """budget.credits empty, negative or fractional: a message about credits, not Python's
    "None is not of type 'integer'"."""
    for value in ("", "-1", "2.5", "lots"):
        path = tmp_path / "m.yaml"
        path.write_text(MANIFEST + f"budget:\n  credits: {value}\n")
        with pytest.raises(ManifestError) as caught:
            load_campaign(path)
        message = caught.value.message
        assert "budget.credits: must be a whole number of credits ≥ 0" in message, message
        assert "None" not in message and "integer" not in message
