"""A run's uploads end to end on a file:// store, against the emulator: a video is uploaded
once however many files hold it, a second campaign on the same store uploads nothing, every
file is flagged stored, and `i2v push` then finds everything already there."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import run

MANIFEST = """\
version: 1
name: shared
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - glob: "images/*.png"
prompts:
  - id: near
    template: "Dolly in on {{{{ image.id }}}}"
  - id: close
    template: "Dolly in close on {{{{ image.id }}}}"
output:
  dir: {out}
  path: "{{{{ image.id }}}}/{{{{ prompt.id }}}}.mp4"
store: {{url: "{store}"}}
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""
"""Both prompts are a dolly (the emulator's motion): one video per image, two files of it."""


def objects(store: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (store / "sha256").rglob("*.mp4")}


def test_each_video_is_uploaded_once_and_found_by_the_next_campaign(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    store = workdir / "store"
    first = write_manifest(
        MANIFEST.format(url=emulator.base_url, out="out", store=store.as_uri()), name="a.yaml"
    )
    code, summary, err = run("run", str(first), "--yes", "--json")
    assert code == 0, err
    assert summary is not None
    jobs = yaml.safe_load((workdir / "a.lock.yaml").read_text())["jobs"]
    lock_files = [f for j in jobs for f in j["files"]]
    videos = {f["sha256"] for f in lock_files}
    assert len(lock_files) == 2 * len(videos) and all(f["stored"] for f in lock_files)
    assert summary["stored"] == len(lock_files) and summary["uploaded"] == len(videos)
    held = objects(store)
    assert len(held) == len(videos)

    # another campaign (its own lock and folder) on the same store: nothing to upload
    second = write_manifest(
        MANIFEST.format(url=emulator.base_url, out="out2", store=store.as_uri()), name="b.yaml"
    )
    code, summary, err = run("run", str(second), "--yes", "--json")
    assert code == 0, err
    assert summary is not None
    assert summary["stored"] == len(lock_files) and summary["uploaded"] == 0
    assert objects(store) == held  # not one object rewritten
    jobs = yaml.safe_load((workdir / "b.lock.yaml").read_text())["jobs"]
    assert all(f["stored"] for j in jobs for f in j["files"])

    code, pushed, err = run("push", str(second), "--json")
    assert code == 0, err
    assert pushed is not None and pushed["pushed"] == [] and pushed["already"] == len(lock_files)
