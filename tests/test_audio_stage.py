"""The audio stage in the pure layers: fingerprints, plan items from each audio record state,
orphans, the journal's and the lock's audio records, and `validate` on bad blocks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.errors import LockError
from i2v_pipeline.model import (
    Action,
    AudioStage,
    FileRecord,
    ImageRef,
    JobSpec,
    LockEntry,
    PaidAttempt,
    PlanItem,
)
from i2v_pipeline.report.cards import AudioResult, build_report
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.spec.audio import audio_jobs
from i2v_pipeline.state.journal import Entries, apply, record
from i2v_pipeline.state.lock import compact, read_lock
from i2v_pipeline.state.plan import PlanOptions, make_plan
from i2v_pipeline.state.selection import select

from .conftest import WriteManifest

IMG = ImageRef("path", "/a.png", "a.png", "1" * 64)
NOW = 1_800_000_000.0
AI = AudioStage("ai", None, "job.audio.mp4")


def spec(audio: AudioStage | None = AI, variants: int = 1, seconds: int = 5) -> JobSpec:
    request = {"prompt": "p", "count": variants, "video_length": seconds, "resolution": "720p"}
    return JobSpec("job", IMG, request, "job.mp4", fingerprint="f" * 64, audio=audio)


def video_done(s: JobSpec) -> LockEntry:
    n = s.variants
    paths = s.output_paths()
    return LockEntry(
        "job",
        s.fingerprint,
        "succeeded",
        "a",
        remote_ids=tuple(f"r{i}" for i in range(n)),
        remote_status=(3,) * n,
        files=tuple(FileRecord(f"out/{p}", "a" * 64, 100) for p in paths),
    )


def audio_entry(s: JobSpec, variant: int, state: str, **kw: object) -> LockEntry:
    job = audio_jobs(s)[variant - 1]
    return LockEntry(
        "job",
        job.fingerprint,
        state,  # type: ignore[arg-type]
        "b",
        intent_at="T0",
        video=s.fingerprint,
        variant=variant,
        **kw,  # type: ignore[arg-type]
    )


def plan(
    specs: list[JobSpec], entries: list[LockEntry], files: dict[str, int], **opts: bool
) -> list[PlanItem]:
    return make_plan(
        specs,
        {e.fingerprint: e for e in entries},
        prefix="out",
        probe=files.get,
        now=NOW,
        options=PlanOptions(**opts),
    )


HELD = {"out/job.mp4": 100}


def test_audio_fingerprint_follows_video_variant_and_request() -> None:
    """The audio key changes with the video, the variant and the audio request, and not with
    the output path; the video's own fingerprint never sees the audio."""
    a = audio_jobs(spec(variants=2))
    assert len(a) == 2 and a[0].fingerprint != a[1].fingerprint
    assert [j.output for j in a] == ["job.audio-v1.mp4", "job.audio-v2.mp4"]
    moved = audio_jobs(spec(AudioStage("ai", None, "elsewhere.mp4"), variants=2))
    assert [j.fingerprint for j in moved] == [j.fingerprint for j in a]
    custom = audio_jobs(spec(AudioStage("custom", "https://x.test/a.mp3", "job.audio.mp4")))
    assert custom[0].fingerprint != audio_jobs(spec())[0].fingerprint
    assert custom[0].request == {"audio_type": 2, "audio_url": "https://x.test/a.mp3"}
    other_video = dataclasses.replace(spec(), fingerprint="e" * 64)
    assert audio_jobs(other_video)[0].fingerprint != audio_jobs(spec())[0].fingerprint
    assert audio_jobs(spec(None)) == []


def test_new_audio_is_planned_after_its_video_with_credits() -> None:
    """One `+♪ audio` item per variant, right after the video's, at §6's price by length."""
    items = plan([spec(variants=2, seconds=10)], [], {})
    assert [i.action for i in items] == [Action.CREATE, Action.AUDIO, Action.AUDIO]
    assert [i.credits for i in items[1:]] == [10, 10]
    assert all(i.spec is None and i.audio is not None for i in items[1:])
    assert "once its video is done" in items[1].reason


def test_audio_record_states_map_to_actions() -> None:
    """unknown stays unknown (never bought again unasked), submitted resumes, failed waits for
    --retry-failed, succeeded with its file is fresh, without it is downloaded."""
    s = spec()
    v = video_done(s)

    def action(e: LockEntry, files: dict[str, int] = HELD, **opts: bool) -> Action:
        items = plan([s], [v, e], files, **opts)
        assert items[0].action is Action.FRESH
        return items[1].action

    assert action(audio_entry(s, 1, "unknown")) is Action.UNKNOWN
    assert action(audio_entry(s, 1, "unknown"), resubmit_unknown=True) is Action.AUDIO
    running = audio_entry(s, 1, "submitted", remote_ids=("x",), remote_status=(2,))
    assert action(running) is Action.RESUME
    assert action(audio_entry(s, 1, "failed")) is Action.FAILED
    assert action(audio_entry(s, 1, "failed"), retry_failed=True) is Action.AUDIO
    rec = FileRecord("out/job.audio.mp4", "c" * 64, 50)
    done = audio_entry(s, 1, "succeeded", remote_ids=("x",), remote_status=(3,), files=(rec,))
    assert action(done, {**HELD, "out/job.audio.mp4": 50}) is Action.FRESH
    assert action(done) is Action.DOWNLOAD


def test_no_audio_is_planned_for_a_failed_or_unknown_video() -> None:
    """A video that failed or has no answer leaves nothing to add audio to."""
    s = spec()
    failed = dataclasses.replace(video_done(s), state="failed")
    assert [i.action for i in plan([s], [failed], {})] == [Action.FAILED]


def test_audio_records_of_a_wanted_video_are_not_orphans() -> None:
    """An audio record stays while its video and update_audio are wanted, whatever the video's
    state; a changed update_audio or a removed job orphans it (for prune)."""
    s = spec()
    v, a = video_done(s), audio_entry(s, 1, "succeeded")
    failed = dataclasses.replace(v, state="failed")
    assert Action.ORPHAN not in [i.action for i in plan([s], [failed, a], {})]
    changed = spec(AudioStage("custom", "https://x.test/a.mp3", "job.audio.mp4"))
    items = plan([changed], [v, a], HELD)
    orphans = [i for i in items if i.action is Action.ORPHAN]
    assert [o.fingerprint for o in orphans] == [a.fingerprint]
    assert "update_audio" in orphans[0].reason
    gone = plan([], [v, a], {})
    assert [i.action for i in gone] == [Action.ORPHAN, Action.ORPHAN]


def test_audio_record_is_never_a_video_to_replace() -> None:
    """A changed video is replaced against its old video entry, never its audio record."""
    s = spec()
    v, a = video_done(s), audio_entry(s, 1, "succeeded")
    new = dataclasses.replace(s, request={**s.request, "prompt": "q"}, fingerprint="d" * 64)
    items = plan([new], [a, v], {})
    assert items[0].action is Action.REPLACE and items[0].replaces == v


def test_shard_keeps_audio_with_its_video() -> None:
    """--shard puts an audio item in its video's shard (the audio needs the video)."""
    items = plan([spec(variants=3)], [], {})
    for k in (1, 2, 3):
        got = select(items, shard=(k, 3))
        assert len(got) in (0, 4)


def test_journal_and_lock_keep_the_audio_link(tmp_path: Path) -> None:
    """intent/created carry video and variant; the lock writes them, reads them back, and its
    schema accepts them."""
    entries: Entries = {}
    link = {"video": "f" * 64, "variant": 2}
    req = {"audio_type": 1, "audio_url": "", "pre_video_id": "r1"}
    apply(entries, record("intent", "a" * 64, id="job", attempt="x", request=req, **link))
    apply(entries, record("created", "a" * 64, id="job", attempt="x", ids=["n"], credits=5))
    e = entries["a" * 64]
    assert (e.video, e.variant, e.state, e.credits) == ("f" * 64, 2, "submitted", 5)
    lock = tmp_path / "m.lock.yaml"
    compact(lock, entries, manifest="m.yaml", command="t", endpoint="emulator")
    schemas.validate("lock", yaml.safe_load(lock.read_text()), error_class=LockError)
    assert read_lock(lock)["a" * 64] == e
    lock.write_text(lock.read_text().replace('"variant": 2', '"variant": 0'))
    with pytest.raises(LockError, match="variant"):
        read_lock(lock)


BAD_BLOCKS = [
    ("{type: robot}", "is not one of"),
    ("{type: custom}", "'url' is required"),
    ('{type: ai, url: "https://x.test/a.mp3"}', "only for `type: custom`"),
    ("{type: ai, voice: x}", "unknown key `voice`"),
    ('{type: custom, url: "ftp://x.test/a"}', "not an http(s) URL"),
    ('{type: ai, output: "{{ id }}.wav"}', "does not end in .mp4"),
    ("ai", "is not of type"),
]


@pytest.mark.parametrize(("block", "message"), BAD_BLOCKS)
def test_validate_rejects_bad_update_audio(
    write_manifest: WriteManifest, block: str, message: str
) -> None:
    """`i2v validate` names a bad update_audio block, where it is and how to fix it (exit 2)."""
    path = write_manifest(
        f"""\
        version: 1
        name: t
        images:
          - path: images/garden.png
        prompts:
          - id: a
            template: "A calm scene"
            fields:
              update_audio: {block}
        """
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert f"{path.name}:9:" in result.stderr  # the block's own line
    assert "hint:" in result.stderr


def test_update_audio_most_specific_wins(write_manifest: WriteManifest) -> None:
    """defaults < image < prompt < job fields, the whole block; null turns the stage off."""
    path = write_manifest(
        """\
        version: 1
        name: t
        defaults: {update_audio: {type: ai}}
        images:
          - path: images/garden.png
            id: g
            fields: {update_audio: {type: custom, url: "https://x.test/{{ image.id }}.mp3"}}
          - path: images/tower.png
            id: t
        prompts:
          - id: a
            template: "A calm scene"
          - id: quiet
            template: "Quiet"
            fields: {update_audio: null}
        jobs:
          - id: own
            image: t
            template: "Own"
            fields: {update_audio: {type: ai, output: "sound/{{ id }}.mp4"}}
        """
    )
    result = CliRunner().invoke(cli, ["expand", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    jobs = {j["id"]: j.get("update_audio") for j in json.loads(result.stdout)}
    assert jobs == {
        "g.a": {"type": "custom", "url": "https://x.test/g.mp3", "output": "g.a.audio.mp4"},
        "g.quiet": None,
        "t.a": {"type": "ai", "output": "t.a.audio.mp4"},
        "t.quiet": None,
        "own": {"type": "ai", "output": "sound/own.mp4"},
    }
    for j in json.loads(result.stdout):
        schemas.validate("job", j)


def test_report_shows_audio_on_its_video_card(tmp_path: Path) -> None:
    """The report puts each audio record on its video variant's card, not on a card or job of
    its own; planned audio shows as planned, and its credits count as planned."""
    s = spec(variants=2)
    v = video_done(s)
    rec = FileRecord("out/job.audio-v1.mp4", "c" * 64, 50)
    a1 = audio_entry(s, 1, "succeeded", remote_ids=("x",), remote_status=(3,), files=(rec,))
    files = {"out/job-v1.mp4": 100, "out/job-v2.mp4": 100, "out/job.audio-v1.mp4": 50}
    items = plan([s], [v, a1], files)
    report = build_report(
        name="t",
        manifest="m.yaml",
        base_dir=tmp_path,
        prefix="out",
        items=items,
        entries={e.fingerprint: e for e in (v, a1)},
    )
    assert (
        len(report.cards) == 2 and len(report.jobs) == 1 and report.job_counts() == {"succeeded": 1}
    )
    assert report.cards[0].audio == AudioResult("succeeded", "out/job.audio-v1.mp4", None)
    assert report.cards[1].audio == AudioResult("planned", "out/job.audio-v2.mp4", None)
    assert report.credits_planned == 5


def test_an_audio_record_paid_twice_says_so_in_the_plan() -> None:
    """An audio record a lock merge kept two paid attempts of says `also paid for:` in its
    plan line, as a video's does."""
    s = spec()
    rec = FileRecord("out/job.audio.mp4", "c" * 64, 50)
    paid = (PaidAttempt("z", ("rz",), 5),)
    e = audio_entry(s, 1, "succeeded", remote_ids=("x",), files=(rec,), also_paid=paid)
    items = plan([s], [video_done(s), e], {**HELD, "out/job.audio.mp4": 50})
    assert items[1].action is Action.FRESH
    assert items[1].reason.endswith("; also paid for: rz (merged lock)")
