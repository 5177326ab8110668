"""The emulator's account: jobs, credits, and the 1 -> 2 -> 3/4 lifecycle on a clock.

Status is derived by replaying events up to "now" (`advance`), never by timers, so a test can
move a ManualClock and see exactly the states the real service would show at that time. Jobs
wait `queue_time`, then start in FIFO order while fewer than `max_processing` run.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..akool_codes import STATUS_FAILED, STATUS_PROCESSING, STATUS_QUEUED, STATUS_SUCCEEDED
from ..spec.catalog import Catalog, estimate_credits
from .config import EmulatorConfig


class Clock:
    """Wall time; tests swap in ManualClock."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Job:
    """One emulated video job: its request fields, timing, fate and charge."""

    id: str
    fields: dict[str, Any]
    create_time: int
    ready_at: float
    fails: bool
    credits: int
    status: int = STATUS_QUEUED
    start_at: float | None = None
    end_at: float | None = None
    update_time: int | None = None
    deleted: bool = False
    sub_type: int = 1501

    @property
    def video_length(self) -> int:
        return int(self.fields.get("video_length") or 5)

    def to_api(self, base_url: str) -> dict[str, Any]:
        """The job as AKOOL's results endpoint shows it (with the video URL once done)."""
        out = {
            **self.fields,
            "_id": self.id,
            "create_time": self.create_time,
            "status": self.status,
            "deduction_credit": self.credits,
        }
        if self.update_time is not None:
            out["update_time"] = self.update_time
        if self.status == STATUS_SUCCEEDED:
            out["video_url"] = f"{base_url}/_emulator/videos/{self.id}.mp4"
            out["video_duration"] = float(self.video_length)
        return out


@dataclass
class Account:
    """The account's credits and its queue: jobs move on by the clock, not by polling."""

    credits: float
    queued: deque[Job] = field(default_factory=deque)
    processing: list[tuple[float, int, Job]] = field(default_factory=list)
    cursor: float = 0.0


class State:
    """All emulated jobs and the account; time-driven, advanced on each read."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.catalog = Catalog.bundled()
        self.jobs: dict[str, Job] = {}
        self.account = Account(credits=config.credits, cursor=self.clock.now())
        self.rng = random.Random(config.seed)
        self.next_id = 1
        self._seq = itertools.count()
        self.events: list[tuple[Job, int]] = []
        """(job, status) changes not yet sent to webhooks."""
        self.creates: Counter[tuple[str, str]] = Counter()
        """Creates per (image_url, prompt): how tests count what was bought."""
        self.base_url = ""
        self.on_create: Callable[[list[Job]], None] | None = None
        self.on_delete: Callable[[list[str]], None] | None = None
        """Journal hooks (persist.py): called before the answer is sent."""

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def new_id(self) -> str:
        """A 24-hex id like AKOOL's (time, seed, counter): unique and sortable."""
        n, self.next_id = self.next_id, self.next_id + 1
        return f"{int(self.clock.now()):08x}{self.config.seed:06x}{n:010x}"

    def price(self, fields: dict[str, Any]) -> int:
        """Credits for one video of these fields, as the catalog estimates."""
        return estimate_credits({**fields, "count": 1})

    def create(
        self, fields: dict[str, Any], count: int, *, batch: bool, price: int | None = None
    ) -> list[Job]:
        """Charge and queue `count` jobs (at `price` each, or the catalog's). The caller has
        checked credits and fields."""
        self.advance()
        now = self.clock.now()
        base_ms = self.now_ms()
        batch_id = f"{base_ms}_{self.config.uid}"
        jobs = []
        for i in range(count):
            extra = {"batch_id": batch_id, "batch_count": count} if batch else {}
            job = Job(
                id=self.new_id(),
                fields={**fields, **extra},
                create_time=base_ms + i,
                ready_at=now + self.config.queue_time,
                fails=self.rng.random() < self.config.fail_share,
                credits=self.price(fields) if price is None else price,
            )
            self.account.credits -= job.credits
            self.jobs[job.id] = job
            self.account.queued.append(job)
            self.creates[(str(fields.get("image_url")), str(fields.get("prompt")))] += 1
            jobs.append(job)
        if self.on_create is not None:
            self.on_create(jobs)
        return jobs

    def advance(self) -> None:
        """Apply every start and finish due by now, in time order."""
        now = self.clock.now()
        acct, cap = self.account, self.config.max_processing
        while True:
            next_end = acct.processing[0][0] if acct.processing else None
            next_start = None
            if acct.queued and len(acct.processing) < cap:
                next_start = max(acct.queued[0].ready_at, acct.cursor)
            if next_end is not None and (next_start is None or next_end <= next_start):
                if next_end > now:
                    break
                _, _, job = heapq.heappop(acct.processing)
                acct.cursor = next_end
                self._finish(job, next_end)
            elif next_start is not None and next_start <= now:
                job = acct.queued.popleft()
                acct.cursor = next_start
                if job.deleted:
                    continue
                job.status, job.start_at = STATUS_PROCESSING, next_start
                job.end_at = next_start + self.config.processing_time
                job.update_time = int(next_start * 1000)
                heapq.heappush(acct.processing, (job.end_at, next(self._seq), job))
                self.events.append((job, STATUS_PROCESSING))
            else:
                break

    def _finish(self, job: Job, at: float) -> None:
        job.status = STATUS_FAILED if job.fails else STATUS_SUCCEEDED
        job.update_time = int(at * 1000)
        if job.fails:
            self.account.credits += job.credits  # the demo says failed videos are refunded
        self.events.append((job, job.status))

    def expired(self, job: Job) -> bool:
        """True once a finished job's result is past the expiry window."""
        return job.end_at is not None and self.clock.now() > job.end_at + self.config.expiry

    def find(self, ids: list[str]) -> list[Job]:
        """The jobs with these ids (deleted ones left out), after advancing time."""
        self.advance()
        return [j for i in ids if (j := self.jobs.get(i)) is not None and not j.deleted]

    def delete(self, ids: list[str]) -> tuple[list[str], list[dict[str, str]]]:
        """Delete jobs; returns (deleted ids, refused items as AKOOL lists them)."""
        self.advance()
        ok: list[str] = []
        refused: list[dict[str, str]] = []
        for i in ids:
            job = self.jobs.get(i)
            if job is None or job.deleted:
                refused.append({"_id": i, "msg": "video resource does not exist"})
            elif job.status == STATUS_PROCESSING:
                refused.append(
                    {"_id": i, "msg": "video resource is processing, please try again later"}
                )
            else:
                job.deleted = True
                ok.append(i)
        if ok and self.on_delete is not None:
            self.on_delete(ok)
        return ok, refused

    # ------------------------------------------------------------------ persistence (persist.py)
    def restore(self, job: Job, *, charge: bool) -> None:
        """Put back a job from a snapshot or journal; unfinished ones rejoin the queue or the
        processing heap, so the clock derives their later statuses (and refunds) again."""
        self.jobs[job.id] = job
        self.creates[(str(job.fields.get("image_url")), str(job.fields.get("prompt")))] += 1
        if charge:
            self.account.credits -= job.credits
        with contextlib.suppress(ValueError):
            self.next_id = max(self.next_id, int(job.id[-10:], 16) + 1)
        if job.status == STATUS_QUEUED:
            self.account.queued.append(job)
        elif job.status == STATUS_PROCESSING and job.end_at is not None:
            heapq.heappush(self.account.processing, (job.end_at, next(self._seq), job))
