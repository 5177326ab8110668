"""Downloads end to end against the emulator: a paid video is kept on a soft mismatch, a bad
transfer is retried in the same run, a download that never works is reported, and --verify
finds a same-size edit."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.emulator import Faults
from i2v_pipeline.spec.fingerprint import hash_file

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import check_lock, run

MANIFEST = """\
version: 1
name: dl
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - path: images/garden.png
prompts:
  - id: dolly
    template: "Dolly in"
  - id: pan
    template: "Pan across"
output:
  dir: out
  path: "{{{{ prompt.id }}}}.mp4"
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""


def shrink(emulator: ThreadedEmulator) -> None:
    """Render at half size: a 720p job comes back with a 360 px short side."""
    emulator.emu.media.config = emulator.emu.media.config.with_(scale=0.5)


def test_frame_size_mismatch_keeps_the_paid_video(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """verify: warn (default): the run succeeds, the files stay, the lock, status and plan
    show the mismatch, and a rerun downloads nothing."""
    shrink(emulator)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["done"] == 2, err
    jobs = check_lock(workdir / "m.lock.yaml", workdir)
    for job in jobs.values():
        (f,) = job["files"]  # type: ignore[misc]
        assert f["mismatch"].startswith("frame is") and "720p short side" in f["mismatch"]
        assert (workdir / f["path"]).is_file()
    status = CliRunner().invoke(cli, ["status", str(path)])
    assert status.stdout.count("(kept, but frame is") == 2, status.stdout
    shown = CliRunner().invoke(cli, ["plan", str(path)])
    assert shown.stdout.count("differs from the request: frame is") == 2, shown.stdout
    videos = emulator.requests("video")
    code, summary, _ = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["fresh"] == 2 and summary["done"] == 0
    assert emulator.requests("video") == videos  # nothing downloaded again


def test_verify_strict_fails_the_mismatch(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """verify: strict: the job is reported failed (exit 1) and no file is kept."""
    shrink(emulator)
    path = write_manifest("verify: strict\n" + MANIFEST.format(url=emulator.base_url))
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.dolly")
    assert code == 1 and summary is not None and summary["failed"] == 1
    (problem,) = summary["problems"]  # type: ignore[misc]
    assert "verify: strict" in problem["detail"]
    assert not (workdir / "out/dolly.mp4").exists()


def test_one_503_or_truncation_is_recovered_in_the_same_run(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """The video URL answers 503 once and sends half a file once: both jobs end done in one
    run, with intact files."""
    emulator.emu.config = emulator.emu.config.with_(
        faults={"video": Faults(http_5xx=1.0, truncate=1.0, times=1)}
    )
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["done"] == 2, (summary, err)
    assert emulator.requests("video") == 4  # two good downloads, one 503, one truncated
    jobs = check_lock(workdir / "m.lock.yaml", workdir)
    assert all(len(j["files"]) == 1 for j in jobs.values())  # type: ignore[arg-type]


def test_download_that_always_fails_is_reported(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Every download 503s: the job is failed in the summary and --json, exit 1; a rerun
    without the fault downloads it without buying it again."""
    emulator.emu.config = emulator.emu.config.with_(faults={"video": Faults(http_5xx=1.0)})
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.pan")
    assert code == 1 and summary is not None
    assert summary["failed"] == 1 and summary["done"] == 0
    (problem,) = summary["problems"]  # type: ignore[misc]
    assert problem["id"] == "garden.pan" and "HTTP 503 (after 4 attempts)" in problem["detail"]
    assert not (workdir / "out/pan.mp4").exists()
    status = CliRunner().invoke(cli, ["status", str(path)])
    assert "succeeded garden.pan  -  (not downloaded: `i2v run` fetches it)" in status.stdout
    emulator.emu.config = emulator.emu.config.with_(faults={})
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.pan")
    assert code == 0 and summary is not None and summary["done"] == 1
    assert emulator.creates() == 1


def test_run_verify_redownloads_a_same_size_edit(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A file changed in place (same size, mtime restored) is fresh to the cheap check;
    plan --verify sees it and run --verify downloads it again."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    assert run("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 0
    video = workdir / "out/dolly.mp4"
    good = hash_file(video)
    st = video.stat()
    data = bytearray(video.read_bytes())
    data[-10:] = b"0123456789"
    video.write_bytes(bytes(data))
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    _, plan, _ = run("plan", str(path), "--json", "--select", "garden.dolly")
    assert plan is not None and plan["summary"]["fresh"] == 1  # type: ignore[index]
    _, plan, _ = run("plan", str(path), "--json", "--verify", "--select", "garden.dolly")
    assert plan is not None and plan["summary"]["download"] == 1  # type: ignore[index]
    code, summary, err = run(
        "run", str(path), "--yes", "--json", "--verify", "--select", "garden.dolly"
    )
    assert code == 0 and summary is not None and summary["done"] == 1, err
    assert hash_file(video) == good and emulator.creates() == 1
    lock = yaml.safe_load((workdir / "m.lock.yaml").read_text())
    (job,) = lock["jobs"]
    assert job["files"][0]["mtime_ns"] == video.stat().st_mtime_ns
