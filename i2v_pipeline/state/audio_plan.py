"""The audio stage in the plan: one item per video variant of a job with `update_audio:`.

An audio record is a lock entry of its own (keyed by the audio job's fingerprint, linked to its
video by `video` and `variant`), so it goes through the same states as a video: a new one is
bought (`+♪ audio`, with its credits), an unanswered one is `? unknown` (never bought again on
its own), a running one is resumed, a finished one downloaded or kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..model import TERMINAL_STATUSES, Action, AudioJob, FileRecord, JobSpec, LockEntry, PlanItem
from ..spec.audio import audio_jobs
from ..spec.catalog import estimate_audio_credits

if TYPE_CHECKING:
    from .plan import PlanOptions

FileCheck = Callable[[str, FileRecord], bool]

NO_VIDEO = (Action.FAILED, Action.UNKNOWN, Action.ORPHAN)
"""Video outcomes that leave nothing to add audio to in this run: no audio is planned."""


def items(
    spec: JobSpec,
    video: PlanItem,
    entries: Mapping[str, LockEntry],
    options: PlanOptions,
    prefix: str,
    check: FileCheck,
    now: str,
) -> list[PlanItem]:
    """The audio items of spec's video (after the video's own item `video`)."""
    if video.action in NO_VIDEO:
        return []
    after = " once its video is done" if video.action.is_work else ""
    return [
        _item(job, entries.get(job.fingerprint), options, prefix, check, now, after)
        for job in audio_jobs(spec)
    ]


def live(specs: Iterable[JobSpec]) -> set[str]:
    """The fingerprints of every audio job the specs ask for: their records are no orphans."""
    return {job.fingerprint for s in specs if s.audio is not None for job in audio_jobs(s)}


def _which(job: AudioJob) -> str:
    n = job.video.variants
    return f"audio ({job.video.audio.type if job.video.audio else '?'})" + (
        f" for variant {job.variant} of {n}" if n > 1 else ""
    )


def _item(
    job: AudioJob,
    e: LockEntry | None,
    opts: PlanOptions,
    prefix: str,
    check: FileCheck,
    now: str,
    after: str,
) -> PlanItem:
    spec, fp, what = job.video, job.fingerprint, _which(job)

    def item(action: Action, reason: str, credits: int = 0) -> PlanItem:
        return PlanItem(action, spec.id, fp, reason, entry=e, credits=credits, audio=job)

    cost = estimate_audio_credits(spec.seconds)
    if e is None:
        return item(Action.AUDIO, f"new {what}{after}", cost)
    if e.state == "unknown":
        if opts.resubmit_unknown:
            return item(
                Action.AUDIO,
                f"{what}: sent {e.intent_at} with no answer; resubmitting (--resubmit-unknown)",
                cost,
            )
        return item(
            Action.UNKNOWN,
            f"{what}: sent {e.intent_at} and no answer recorded: it may exist (and be charged) "
            "remotely; check, then rerun with --resubmit-unknown",
        )
    if e.state == "submitted":
        done = sum(s in TERMINAL_STATUSES for s in e.remote_status)
        return item(Action.RESUME, f"{what}: submitted {e.submitted_at}; {done} of 1 finished")
    if e.state == "failed":
        msg = e.error.message if e.error else "failed"
        if opts.retry_failed:
            return item(Action.AUDIO, f"{what} failed before: {msg}; retrying", cost)
        return item(Action.FAILED, f"{what} failed {e.finished_at}: {msg}; --retry-failed")
    wanted = f"{prefix}/{job.output}" if prefix != "." else job.output
    rec = e.files[0] if e.files else None
    if rec is not None and rec.path == wanted and check(wanted, rec):
        return item(Action.FRESH, f"{what} done, file present")
    if rec is not None and rec.path != wanted and check(rec.path, rec):
        return item(Action.RELOCATE, f"{what}: output path changed; the file will be copied")
    reason = f"{what} finished remotely; {wanted} missing or changed locally"
    if e.expires_at and e.expires_at < now:
        reason += f" (result URL expired {e.expires_at}; it will be re-queried)"
    return item(Action.DOWNLOAD, reason)


def to_json(job: AudioJob) -> dict[str, Any]:
    """What `plan --json` adds to an audio item."""
    return {
        "stage": "audio",
        "video": job.video.fingerprint,
        "variant": job.variant,
        "output": job.output,
    }
