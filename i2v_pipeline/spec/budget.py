"""A campaign's credit budget and the estimates it is checked against.

`budget: {credits: N}` caps everything the campaign ever buys: what the lock records as charged
(`deduction_credit`, the entry's credits), creates sent but not yet charged (in flight or
unknown: estimated), and what the plan would buy (estimated). Estimates come from the lock's
own charges per model, resolution, duration and audio once it has some (AKOOL's real price
formula is unknown, akool-api.md §12), else from the documented price table.

Pure: lock entries and plan items in, numbers out.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from ..errors import I2VError
from ..model import Action, LockEntry, PlanItem
from ..text import plural
from .catalog import estimate_audio_credits, estimate_credits

MAX_SAMPLES = 500
"""Charges per price key that calibrate an estimate; more would only cost parsing time."""
PriceKey = tuple[str, str, str, bool]
"""(model, resolution, seconds, generate_audio): what the price of one video depends on."""


class BudgetExceeded(I2VError):
    """The campaign's budget would be passed: nothing more is submitted (exit 3)."""

    exit_code = 3


@dataclass(frozen=True)
class Budget:
    """The manifest's `budget:`."""

    credits: int


BUDGET_CREDITS = ("budget", "credits")
MAX_CREDITS = 1_000_000_000_000
"""budget.credits' bound in the manifest schema."""


def schema_problem(path: Sequence[str | int], instance: object) -> str | None:
    """A plain message for a budget.credits that fails the manifest schema (not jsonschema's
    "None is not of type 'integer'"); None for any other path."""
    if tuple(path) != BUDGET_CREDITS:
        return None
    shown = "empty" if instance is None else repr(instance)
    return (
        f"must be a whole number of credits ≥ 0 (at most {MAX_CREDITS:,}), not {shown}: "
        "e.g. `budget: {credits: 500}`"
    )


def budget_of(data: Mapping[str, Any]) -> Budget | None:
    """The budget of a schema-checked manifest document, None when it sets none."""
    raw = data.get("budget")
    if not isinstance(raw, Mapping) or raw.get("credits") is None:
        return None
    return Budget(int(raw["credits"]))


def price_key(request: Mapping[str, Any]) -> PriceKey:
    """What a video's price depends on, as far as we can tell."""
    return (
        str(request.get("model_name") or ""),
        str(request.get("resolution") or ""),
        str(request.get("video_length") or ""),
        bool(request.get("generate_audio")),
    )


@dataclass(frozen=True)
class Calibration:
    """Credits per video actually charged, by price key, from the lock's recorded charges."""

    per_video: Mapping[PriceKey, float]
    samples: Mapping[PriceKey, int]

    @classmethod
    def from_entries(cls, entries: Iterable[LockEntry], wanted: set[PriceKey]) -> Calibration:
        """The mean charge per video of charged entries whose key is in wanted, from up to
        MAX_SAMPLES entries per key: a 100,000-job lock is not parsed whole for one new job."""
        total: dict[PriceKey, float] = {}
        videos: dict[PriceKey, int] = {}
        samples: dict[PriceKey, int] = {}
        open_keys = set(wanted)
        for e in entries:
            if not open_keys:
                break
            if e.credits is None or not e.remote_ids:
                continue
            key = price_key(json.loads(e.request_json))
            if key not in open_keys:
                continue
            total[key] = total.get(key, 0.0) + e.credits
            videos[key] = videos.get(key, 0) + len(e.remote_ids)
            samples[key] = samples.get(key, 0) + 1
            if samples[key] >= MAX_SAMPLES:
                open_keys.discard(key)
        return cls({k: total[k] / videos[k] for k in total}, samples)

    def estimate(self, request: Mapping[str, Any]) -> tuple[int, bool]:
        """(credits for this create, all variants; True when calibrated from the lock)."""
        rate = self.per_video.get(price_key(request))
        if rate is None:
            return estimate_credits(request), False
        # rounded up: a budget is better overestimated than passed
        return math.ceil(rate * int(request.get("count", 1)) - 1e-9), True


def calibrate(
    items: Sequence[PlanItem], entries: Mapping[str, LockEntry]
) -> tuple[list[PlanItem], set[str]]:
    """items with each create's credits re-estimated from the lock's charges where it has
    some; and the fingerprints whose estimate is so calibrated."""
    wanted = {price_key(i.spec.request) for i in items if i.action.submits and i.spec}
    if not wanted:
        return list(items), set()
    calibration = Calibration.from_entries(entries.values(), wanted)
    if not calibration.per_video:
        return list(items), set()
    out: list[PlanItem] = []
    calibrated: set[str] = set()
    for item in items:
        if item.action.submits and item.spec is not None:
            credits, from_lock = calibration.estimate(item.spec.request)
            if from_lock:
                calibrated.add(item.fingerprint)
                item = dataclasses.replace(item, credits=credits)
        out.append(item)
    return out, calibrated


def paid(item: PlanItem) -> bool:
    """True when the item sends a paid call: a video create, or the audio stage's own
    updateVideoAudio (its credits are on the item like a create's)."""
    return item.action.submits or item.action is Action.AUDIO


def _in_flight(e: LockEntry, entries: Mapping[str, LockEntry]) -> int:
    """The estimated charge of a sent call whose charge the lock does not record yet."""
    if e.video is None:
        return estimate_credits(json.loads(e.request_json))
    video = entries.get(e.video)  # an audio record: priced by its video's length
    seconds = json.loads(video.request_json).get("video_length") if video else None
    return estimate_audio_credits(seconds)


@dataclass(frozen=True)
class Tally:
    """Where a campaign stands against its budget (credits)."""

    spent: int
    """Charged, as the lock records it (actual deduction_credit)."""
    in_flight: int
    """Estimated: creates sent and not yet charged (no answer yet, or unknown)."""
    planned: int
    """Estimated: what the plan would buy."""
    budget: int | None
    calibrated: int = 0
    """Planned creates estimated from the lock's own charges; the rest from the price table."""
    estimated: int = 0

    @property
    def total(self) -> int:
        return self.spent + self.in_flight + self.planned

    @property
    def over(self) -> int:
        """Credits by which the plan would pass the budget (0 when it fits or there is none)."""
        return max(0, self.total - self.budget) if self.budget is not None else 0

    @property
    def room(self) -> int | None:
        """Credits this run may still plan to spend under the budget (None: no budget)."""
        if self.budget is None:
            return None
        return max(0, self.budget - self.spent - self.in_flight)

    def to_json(self) -> dict[str, Any]:
        """The `budget` object of `plan --json` and of a plan file."""
        return {
            "credits": self.budget,
            "spent": self.spent,
            "in_flight": self.in_flight,
            "planned": self.planned,
            "total": self.total,
            "over": self.over,
            "estimates": {"calibrated": self.calibrated, "price_table": self.estimated},
        }

    def describe(self) -> str:
        """`Budget: 60 spent + 0 in flight + 40 planned (estimate) = 100 of 120 credits`."""
        how = "calibrated from the lock" if not self.estimated else "estimate"
        if self.calibrated and self.estimated:
            how = "partly calibrated from the lock"
        planned = f"{self.planned:,} planned ({how})" if self.planned else "0 planned"
        head = f"{self.spent:,} spent + {self.in_flight:,} in flight + {planned}"
        if self.budget is None:
            return f"Credits: {head} = {self.total:,}"
        tail = f"; {self.over:,} over budget" if self.over else ""
        return f"Budget: {head} = {self.total:,} of {self.budget:,} credits{tail}"


def tally(
    entries: Mapping[str, LockEntry],
    items: Sequence[PlanItem],
    budget: Budget | None,
    calibrated: AbstractSet[str] = frozenset(),
) -> Tally:
    """Spent, in flight and planned credits of a campaign against its budget."""
    spent = in_flight = 0
    for e in entries.values():
        # creates of the same job paid in another clone, kept by a lock merge: paid all the same
        if e.also_paid:
            spent += sum(p.credits or 0 for p in e.also_paid)
        if e.credits is not None:
            spent += e.credits
        elif e.state in ("submitted", "unknown"):  # sent; the charge is not recorded yet
            in_flight += _in_flight(e, entries)
    submits = [i for i in items if paid(i)]
    n_cal = sum(i.fingerprint in calibrated for i in submits)
    return Tally(
        spent=spent,
        in_flight=in_flight,
        planned=sum(i.credits for i in submits),
        budget=budget.credits if budget else None,
        calibrated=n_cal,
        estimated=len(submits) - n_cal,
    )


def within(items: Sequence[PlanItem], room: int | None) -> tuple[list[PlanItem], list[PlanItem]]:
    """(the work a run may do, the creates it must not send): creates in plan order until the
    next would pass room, as --max-credits stops (resumes and downloads cost nothing)."""
    if room is None:
        return list(items), []
    allowed: list[PlanItem] = []
    held: list[PlanItem] = []
    spent = 0
    for item in items:
        if paid(item):
            if held or spent + item.credits > room:
                held.append(item)
                continue
            spent += item.credits
        allowed.append(item)
    return allowed, held


def exceeded(t: Tally, held: Sequence[PlanItem]) -> BudgetExceeded:
    """The error a run ends with when the budget held creates back."""
    cost = sum(i.credits for i in held)
    return BudgetExceeded(
        f"budget.credits {t.budget:,} would be passed by {t.over:,} credits "
        f"({t.spent:,} spent, {t.in_flight:,} in flight, {t.planned:,} planned): "
        f"{plural(len(held), 'create')} (~{cost:,} credits) not sent",
        hint="raise budget.credits in the manifest, or narrow the run (--select, --limit)",
    )
