"""preflight.problems and its helpers, without the CLI: size estimates, permissions, labels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from i2v_pipeline.cli.common import Selection, plan_campaign
from i2v_pipeline.model import FileRecord, LockEntry
from i2v_pipeline.run import preflight
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.state.plan import PlanOptions, disk_check, make_plan, output_prefix

from .conftest import WriteManifest

TEXT = """\
version: 1
name: t
images: [{glob: "images/*.png"}]
prompts: [{id: a, template: "A calm scene"}]
output: {dir: out/deep}
"""


def problems(path: Path, free: int = 10**12) -> list[str]:
    planned = plan_campaign(load_campaign(path), PlanOptions(), Selection())
    return preflight.problems(
        planned.campaign, planned.items, planned.prefix, planned.entries, lambda _p: free
    )


def test_a_clean_folder_has_no_problems(write_manifest: WriteManifest) -> None:
    """Nothing exists yet and there is room: no problems (the run creates the folders)."""
    assert problems(write_manifest(TEXT)) == []


def test_unwritable_folder_is_a_problem(
    write_manifest: WriteManifest, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nearest existing folder of output.dir must be writable (checked with os.access, so
    this holds for root too, who would otherwise write anywhere)."""
    (workdir / "out").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p) != workdir / "out" and real_access(p, mode)
    )
    (found,) = problems(write_manifest(TEXT))
    assert found.startswith(f"cannot write in {workdir / 'out'}")


def test_disk_estimate_is_generous_and_grows(write_manifest: WriteManifest) -> None:
    """The size estimate grows with resolution, duration and variants, and a 5 s 720p video is
    allowed several MB."""
    base = {"resolution": "720p", "video_length": 5, "count": 1}
    size = preflight.video_bytes(base)
    assert 4_000_000 < size < 10_000_000
    assert preflight.video_bytes({**base, "resolution": "1080p"}) > size
    assert preflight.video_bytes({**base, "video_length": 10}) == 2 * size
    assert preflight.video_bytes({**base, "count": 3}) == 3 * size
    assert preflight.video_bytes({**base, "resolution": "16k"}) > size  # unknown: the largest
    three = 3 * size
    found = problems(write_manifest(TEXT), free=three - 1)
    assert len(found) == 1 and "the planned videos need up to" in found[0]
    assert problems(write_manifest(TEXT), free=three) == []


def test_endpoint_label_drops_credentials() -> None:
    """Messages name the endpoint by scheme, host and port only."""
    assert preflight.endpoint_label("https://u:p@api.example.com:8443/x?k=1") == (
        "https://api.example.com:8443"
    )


def _planned_with(path: Path, entries: dict[str, LockEntry]) -> list[str]:
    campaign = load_campaign(path)
    base = campaign.manifest.base_dir
    prefix = output_prefix(base, campaign.output_dir)
    items = make_plan(campaign.specs, entries, prefix=prefix, check=disk_check(base), now=0.0)
    return preflight.problems(campaign, items, prefix, entries, lambda _p: 10**12)


def test_a_bought_jobs_unrecorded_file_is_its_own(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """A job the lock bought but holds no file for (a crash between a download's rename and its
    journal record) may replace the file at its path; a new job may not."""
    path = write_manifest(TEXT)
    specs = {s.id: s for s in load_campaign(path).specs}
    bought = specs["garden.a"]
    entry = LockEntry(
        job_id=bought.id,
        fingerprint=bought.fingerprint,
        state="succeeded",
        attempt="a1",
        remote_ids=("r1",),
        remote_status=(3,),
    )
    (workdir / "out" / "deep").mkdir(parents=True)
    for name in ("garden.a.mp4", "tower.a.mp4"):
        (workdir / "out" / "deep" / name).write_bytes(b"partial")
    found = _planned_with(path, {bought.fingerprint: entry})
    assert found == [
        "job tower.a: out/deep/tower.a.mp4 already exists and the lock does not record it for "
        "this job (move it away, or change output.path)"
    ]


def test_a_file_recorded_for_another_job_is_not_this_jobs(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """A file the lock records for one job is refused as the output of another."""
    path = write_manifest(
        TEXT.replace(
            "output: {dir: out/deep}", "output: {dir: out/deep, path: 'x-{{ image.id }}.mp4'}"
        )
    )
    (workdir / "out" / "deep").mkdir(parents=True)
    (workdir / "out" / "deep" / "x-garden.mp4").write_bytes(b"video")
    record = FileRecord("out/deep/x-garden.mp4", "0" * 64, 5)
    old = LockEntry("old.job", "f" * 64, "succeeded", "a1", files=(record,))
    (found,) = _planned_with(path, {old.fingerprint: old})
    assert found.startswith("job garden.a: out/deep/x-garden.mp4 already exists")


AUDIO = TEXT.replace(
    'template: "A calm scene"}]',
    'template: "A calm scene", fields: {update_audio: {type: ai, output: "snd/{{ id }}.mp4"}}}]',
)


def test_an_audio_output_through_a_symlink_out_of_the_output_folder_is_refused(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """update_audio.output is checked like output.path: a folder symlinked out is refused."""
    path = write_manifest(AUDIO)
    outside = workdir.parent / f"{workdir.name}-outside"
    outside.mkdir()
    (workdir / "out" / "deep").mkdir(parents=True)
    (workdir / "out" / "deep" / "snd").symlink_to(outside)
    found = problems(path)
    assert any(
        "out/deep/snd is a symlink to" in p and "outside the output folder" in p for p in found
    ), found


def test_an_audio_output_another_manifests_lock_records_is_refused(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """An audio output equal to a file another manifest's lock records is refused."""
    from i2v_pipeline.state.lock import render_lock

    path = write_manifest(AUDIO)
    record = FileRecord("out/deep/snd/garden.a.mp4", "0" * 64, 5)
    other = LockEntry("x.job", "e" * 64, "succeeded", "a1", remote_ids=("r",), files=(record,))
    text = render_lock([other], manifest="other.yaml", command="i2v run", endpoint="emulator")
    (workdir / "other.lock.yaml").write_text(text)
    found = problems(path)
    assert (
        "job garden.a: out/deep/snd/garden.a.mp4 would overwrite a video recorded in "
        "other.lock.yaml (job x.job)"
    ) in found, found
