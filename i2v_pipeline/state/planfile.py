"""Saved plans (terraform's `plan -out`): `i2v plan M --out PLAN` writes what a run would do and
what it was computed from; `i2v run M --plan PLAN` does exactly that work, or refuses when the
manifest, the lock state or the model catalog changed since (a stale plan).

The file is JSON (schemas/plan.schema.json, docs/plan-file.md): a format version, the i2v
version, sha256 hashes of the manifest file, of the lock state (lockfile and any journal) and of
the catalog the manifest was checked against, the options and selection it was made with, the
budget tally, and the selected jobs in `plan --json`'s shape.

Pure apart from reading and writing files.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..canonical import canonical_json
from ..errors import InputError, UsageError
from ..model import PlanItem
from ..spec import validation as schemas
from .journal import journal_path
from .plan import PlanOptions, plan_to_json

FORMAT = "i2v-plan"
FORMAT_VERSION = 1
MAX_LISTED = 10
"""Changed jobs named in a stale-plan message."""


class StalePlanError(InputError):
    """The saved plan no longer describes what a run would do: nothing is sent (exit 2)."""


def file_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes, None when it does not exist."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def lock_state_sha256(lock_path: Path) -> str | None:
    """sha256 of the lock state on disk: the lockfile, then any journal a stopped run left
    (a crash leaves its records there until the next compaction). None when neither exists."""
    parts = [file_sha256(lock_path), file_sha256(journal_path(lock_path))]
    if parts == [None, None]:
        return None
    return hashlib.sha256("\n".join(p or "-" for p in parts).encode()).hexdigest()


def catalog_sha256(models: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of a model catalog's canonical JSON (what validation and estimates used)."""
    return hashlib.sha256(canonical_json(list(models))).hexdigest()


@dataclass(frozen=True)
class Sources:
    """What a plan is computed from, by hash: change any and the plan is stale."""

    manifest: str
    manifest_sha256: str | None
    lock: str
    lock_sha256: str | None
    catalog: str
    catalog_sha256: str


def sources_of(
    manifest: Path, lock: Path, catalog: tuple[str, Sequence[Mapping[str, Any]]]
) -> Sources:
    """The current hashes of a manifest, its lock state and (source, models) of its catalog."""
    source, models = catalog
    return Sources(
        manifest.name,
        file_sha256(manifest),
        lock.name,
        lock_state_sha256(lock),
        source,
        catalog_sha256(models),
    )


def build(
    items: Sequence[PlanItem],
    *,
    sources: Sources,
    version: str,
    options: PlanOptions,
    selection: Mapping[str, Any],
    budget: Mapping[str, Any] | None,
    calibrated: set[str],
    now: float | None = None,
) -> dict[str, Any]:
    """The plan file's document."""
    body = plan_to_json(items, sources.manifest)
    for job in body["jobs"]:
        if job["credits"]:
            job["estimate"] = "lock" if job["fingerprint"] in calibrated else "price_table"
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "i2v_version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "manifest": {"path": sources.manifest, "sha256": sources.manifest_sha256},
        "lock": {"path": sources.lock, "sha256": sources.lock_sha256},
        "catalog": {"source": sources.catalog, "sha256": sources.catalog_sha256},
        "options": {
            "retry_failed": options.retry_failed,
            "resubmit_unknown": options.resubmit_unknown,
            "verify": options.verify,
        },
        "selection": dict(selection),
        "budget": dict(budget) if budget is not None else None,
        "summary": body["summary"],
        "jobs": body["jobs"],
    }
    doc[SEAL] = body_sha256(doc)
    return doc


SEAL = "plan_sha256"
"""The key of the plan's own hash: a hand edit of any other field is refused at read time."""


def body_sha256(doc: Mapping[str, Any]) -> str:
    """sha256 of the plan document's canonical JSON without its SEAL."""
    return hashlib.sha256(canonical_json({k: v for k, v in doc.items() if k != SEAL})).hexdigest()


def write(path: Path, doc: Mapping[str, Any]) -> None:
    """Write the plan file atomically: a new temporary file beside it (created exclusively, so
    never through a planted symlink), fsync, rename over path (a rename replaces a symlink
    itself, never its target)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SavedPlan:
    """A plan file read back and checked against its schema."""

    path: Path
    doc: Mapping[str, Any]

    @property
    def options(self) -> PlanOptions:
        o = self.doc["options"]
        return PlanOptions(o["retry_failed"], o["resubmit_unknown"], o["verify"])

    @property
    def work(self) -> dict[str, str]:
        """fingerprint -> action label of every job the plan does something for."""
        idle = {"fresh", "failed", "unknown", "orphan"}
        return {j["fingerprint"]: j["action"] for j in self.doc["jobs"] if j["action"] not in idle}


def read(path: Path) -> SavedPlan:
    """Load and check a plan file; exit 2 with a clear message when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"plan file {path} does not exist", hint="write one with `i2v plan M --out PLAN`"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path} is not a plan file ({exc})", hint="write one with `i2v plan M --out PLAN`"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{path} is not an i2v plan file", hint="see docs/plan-file.md")
    if doc.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path} has plan format version {doc.get('format_version')!r}; this i2v reads "
            f"version {FORMAT_VERSION}",
            hint="re-run `i2v plan M --out PLAN` with this i2v",
        )
    schemas.validate("plan", doc, what=str(path), error_class=InputError)
    if doc.get(SEAL) != body_sha256(doc):
        raise InputError(
            f"the plan file {path} was edited after `i2v plan` wrote it (its {SEAL} does not "
            "match its contents): nothing was sent",
            hint="a plan is applied exactly as reviewed; make a new one with "
            "`i2v plan M --out PLAN`",
        )
    return SavedPlan(path, doc)


def changed_sources(saved: SavedPlan, now: Sources, version: str) -> list[str]:
    """What differs between the plan's sources and now, one phrase each (empty: not stale)."""
    d = saved.doc
    out: list[str] = []
    if d["manifest"]["path"] != now.manifest:
        out.append(f"the plan is for {d['manifest']['path']}, not {now.manifest}")
    elif d["manifest"]["sha256"] != now.manifest_sha256:
        out.append(f"the manifest {now.manifest} changed")
    if d["lock"]["sha256"] != now.lock_sha256:
        out.append(f"the lock {now.lock} changed (a run or prune since?)")
    if d["catalog"]["sha256"] != now.catalog_sha256:
        out.append(f"the model catalog changed (now {now.catalog})")
    if d["i2v_version"] != version:
        out.append(f"it was made by i2v {d['i2v_version']}, this is {version}")
    return out


def stale(saved: SavedPlan, why: Sequence[str]) -> StalePlanError:
    """The refusal of a stale plan, naming what changed."""
    manifest = saved.doc["manifest"]["path"]
    return StalePlanError(
        f"the plan {saved.path} is stale, nothing was sent: " + "; ".join(why),
        hint=f"re-run `i2v plan {manifest} --out {saved.path.name}`, review it, then run it",
    )


def apply(saved: SavedPlan, items: Sequence[PlanItem]) -> list[PlanItem]:
    """The work of a fresh (unselected) plan that the saved plan authorises: exactly its jobs,
    each with the same action. Raises StalePlanError when any job the plan lists, fresh ones
    included, now plans otherwise (another id, action or price: an input image changed, a file
    was deleted, ...)."""
    now = {i.fingerprint: i for i in items}
    why: list[str] = []
    out: list[PlanItem] = []
    for job in saved.doc["jobs"]:
        item = now.get(job["fingerprint"])
        if item is None:
            why.append(f"job {job['id']} is no longer planned (its inputs changed)")
        elif item.job_id != job["id"]:
            why.append(f"job {job['id']} is now job {item.job_id}")
        elif item.action.label != job["action"]:
            why.append(f"job {job['id']} was planned to {job['action']}, now {item.action.label}")
        elif item.credits != job["credits"]:
            cost = f"{job['credits']} credits, now {item.credits}"
            why.append(f"job {job['id']} was planned at {cost}")
        elif job["fingerprint"] in saved.work:
            out.append(item)
    if why:
        more = f"… and {len(why) - MAX_LISTED} more" if len(why) > MAX_LISTED else ""
        raise stale(saved, why[:MAX_LISTED] + ([more] if more else []))
    order = {fp: n for n, fp in enumerate(saved.work)}
    return sorted(out, key=lambda i: order[i.fingerprint])
