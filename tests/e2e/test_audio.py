"""The audio stage (`update_audio:`) end to end against the emulator on a loopback port: bought
after the video, polled, downloaded with an audio stream, never bought twice."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
from pathlib import Path

import av
import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.emulator import Faults
from i2v_pipeline.errors import LockError
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.state.lock import compact, load_state, read_lock

from ..conftest import ThreadedEmulator, WriteManifest
from .test_crash import I2V, creates, served, wait_for  # noqa: F401 (served: a fixture)

MANIFEST = """\
version: 1
name: audio
provider: {{endpoint: "{url}", image_base_url: "file://"}}
defaults:
  update_audio: {{type: ai}}
images:
  - path: images/garden.png
prompts:
  - id: calm
    template: "A calm scene"
  - id: two
    template: "Two takes"
    fields:
      variants: 2
      update_audio: {{type: custom, url: "{audio}", output: "{{{{ id }}}}/sound.mp4"}}
  - id: silent
    template: "No audio stage"
    fields: {{update_audio: null}}
output:
  dir: out
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""
AUDIO_URL = "https://example.com/{{ prompt.id }}.mp3"


def run(*args: str) -> tuple[int, dict[str, object] | list[object] | None, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        doc = None
    return result.exit_code, doc, result.stderr


def lock_jobs(workdir: Path) -> list[dict[str, object]]:
    doc = yaml.safe_load((workdir / "m.lock.yaml").read_text())
    schemas.validate("lock", doc, error_class=LockError)
    return list(doc["jobs"])


def audio_records(workdir: Path) -> list[dict[str, object]]:
    return [j for j in lock_jobs(workdir) if "video" in j]


def has_audio(path: Path) -> bool:
    with av.open(str(path)) as c:
        return bool(c.streams.audio) and bool(c.streams.video)


def bought_audio(emulator: ThreadedEmulator) -> int:
    """Audio records the emulator made (and charged), answered or not."""
    return sum(1 for j in emulator.emu.state.jobs.values() if j.fields.get("only_add_audio"))


def manifest(emulator: ThreadedEmulator, audio: str = AUDIO_URL) -> str:
    return manifest_for(emulator.base_url, audio)


def manifest_for(url: str, audio: str = AUDIO_URL) -> str:
    return MANIFEST.format(url=url, audio=audio)


def test_audio_stage_end_to_end(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Audio is bought per variant after the video, polled, downloaded with an audio stream,
    recorded beside its video in the lock; a rerun asks nothing."""
    path = write_manifest(manifest(emulator))
    credits_before = emulator.emu.state.account.credits
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert isinstance(summary, dict) and summary["done"] == 6 and summary["created"] == 3
    assert emulator.requests("batch") == 3
    assert emulator.requests("audio") == 3  # calm once, two once per variant, silent never
    assert bought_audio(emulator) == 3
    assert summary["credits"] == 20 + 40 + 20 + 3 * 5
    assert credits_before - emulator.emu.state.account.credits == summary["credits"]
    out = workdir / "out"
    for name in ("garden.calm.audio.mp4", "garden.two/sound-v1.mp4", "garden.two/sound-v2.mp4"):
        assert has_audio(out / name), name
    assert not (out / "garden.silent.audio.mp4").exists()
    videos = {j["id"]: j for j in lock_jobs(workdir) if "video" not in j}
    records = audio_records(workdir)
    assert sorted((r["id"], r["variant"]) for r in records) == [
        ("garden.calm", 1),
        ("garden.two", 1),
        ("garden.two", 2),
    ]
    for r in records:
        video = videos[str(r["id"])]
        assert r["video"] == video["fingerprint"] and r["state"] == "succeeded"
        assert r["credits"] == 5
        request = r["request"]
        assert isinstance(request, dict) and isinstance(video["remote_ids"], list)
        assert request["pre_video_id"] == video["remote_ids"][int(str(r["variant"])) - 1]
    two = next(r for r in records if r["id"] == "garden.two")
    assert two["request"] == {  # type: ignore[comparison-overlap]
        "audio_type": 2,
        "audio_url": "https://example.com/two.mp3",
        "pre_video_id": two["request"]["pre_video_id"],  # type: ignore[index]
    }
    code, status, _ = run("status", str(path), "--json")
    assert isinstance(status, list)
    assert sum(1 for row in status if isinstance(row, dict) and "audio_of" in row) == 3
    before = emulator.requests()
    code, summary, _ = run("run", str(path), "--yes", "--json")
    assert code == 0 and isinstance(summary, dict) and summary["fresh"] == 6
    assert emulator.requests() == before


def test_changing_only_the_audio_buys_audio_not_video(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A changed update_audio buys new audio for each variant; the videos are not re-created,
    and the superseded audio records are orphans for prune, not re-bought."""
    path = write_manifest(manifest(emulator))
    assert run("run", str(path), "--yes", "--json")[0] == 0
    path = write_manifest(manifest(emulator, "https://example.com/new-{{ prompt.id }}.mp3"))
    code, plan, _ = run("plan", str(path), "--json")
    assert isinstance(plan, dict)
    jobs = plan["jobs"]
    assert isinstance(jobs, list)
    work = [(j["action"], j["id"]) for j in jobs if j["action"] not in ("fresh", "orphan")]
    assert work == [("audio", "garden.two"), ("audio", "garden.two")]
    orphans = [j for j in jobs if j["action"] == "orphan"]
    assert len(orphans) == 2 and all("update_audio" in j["reason"] for j in orphans)
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert emulator.requests("batch") == 3  # no video made again
    assert emulator.requests("audio") == 3 + 2
    assert isinstance(summary, dict) and summary["credits"] == 10
    assert has_audio(workdir / "out" / "garden.two" / "sound-v2.mp4")


def test_prune_keeps_audio_of_live_videos(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """prune has nothing to do while every audio record's video and update_audio are in the
    manifest; removing the job prunes its video and audio records and files."""
    path = write_manifest(manifest(emulator))
    assert run("run", str(path), "--yes", "--json")[0] == 0
    code, pruned, _ = run("prune", str(path), "--yes", "--json")
    assert code == 0 and pruned == {"pruned": [], "refused": {}}
    assert len(audio_records(workdir)) == 3
    text = manifest(emulator).replace('  - id: calm\n    template: "A calm scene"\n', "")
    path = write_manifest(text)
    code, pruned, _ = run("prune", str(path), "--yes", "--json")
    assert code == 0 and isinstance(pruned, dict)
    assert pruned["pruned"] == ["garden.calm", "garden.calm"]  # the video and its audio
    assert not (workdir / "out" / "garden.calm.audio.mp4").exists()
    assert sorted(str(r["id"]) for r in audio_records(workdir)) == ["garden.two", "garden.two"]


def test_lost_audio_answer_is_unknown_and_never_bought_again(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A crash between the audio intent and its answer (the answer is lost after the emulator
    charged it) leaves `? unknown`: reruns do not pay for the same audio again."""
    emulator.emu.config = emulator.emu.config.with_(faults={"audio": Faults(drop=1.0)})
    path = write_manifest(manifest(emulator))
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.calm")
    assert code == 1 and isinstance(summary, dict) and summary["unknown"] == 1
    assert bought_audio(emulator) == 1
    spent = emulator.emu.state.account.credits
    emulator.emu.config = emulator.emu.config.with_(faults={})
    code, plan, _ = run("plan", str(path), "--json", "--select", "garden.calm")
    assert isinstance(plan, dict) and isinstance(plan["jobs"], list)
    assert [j["action"] for j in plan["jobs"]] == ["fresh", "unknown"]
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.calm")
    assert code == 1 and isinstance(summary, dict) and summary["unknown"] == 1
    assert bought_audio(emulator) == 1  # not resent by default
    assert emulator.emu.state.account.credits == spent
    (record,) = audio_records(workdir)
    assert record["state"] == "unknown" and "intent_at" in record


def test_crash_after_the_answer_requeries_the_audio(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A run that died after the audio's `created` was journaled resumes it: the record is
    re-queried through resultsByIds and downloaded, never bought again."""
    path = write_manifest(manifest(emulator))
    assert run("run", str(path), "--yes", "--json", "--select", "garden.calm")[0] == 0
    lock = workdir / "m.lock.yaml"
    entries = read_lock(lock)
    (fp,) = [fp for fp, e in entries.items() if e.video is not None]
    # the state a crash right after `created` leaves: submitted, not polled, no file
    entries[fp] = dataclasses.replace(
        entries[fp], state="submitted", remote_status=(1,), files=(None,), finished_at=None
    )
    compact(lock, entries, manifest="m.yaml", command="test", endpoint=emulator.base_url)
    (workdir / "out" / "garden.calm.audio.mp4").unlink()
    code, plan, _ = run("plan", str(path), "--json", "--select", "garden.calm")
    assert isinstance(plan, dict) and isinstance(plan["jobs"], list)
    assert [j["action"] for j in plan["jobs"]] == ["fresh", "resume"]
    audio_calls, polls = emulator.requests("audio"), emulator.requests("results")
    code, summary, err = run("run", str(path), "--yes", "--json", "--select", "garden.calm")
    assert code == 0, err
    assert isinstance(summary, dict) and summary["done"] == 1 and summary["credits"] == 0
    assert emulator.requests("audio") == audio_calls  # re-queried, not bought
    assert emulator.requests("results") > polls
    assert has_audio(workdir / "out" / "garden.calm.audio.mp4")
    (record,) = audio_records(workdir)
    assert record["state"] == "succeeded"


def test_plan_shows_audio_lines_with_their_credits(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """plan prints one `+♪ audio` line per variant with §6's price (10 s: 10 credits), and the
    JSON plan carries them with their video and variant."""
    text = manifest(emulator).replace("variants: 2", "variants: 2\n      duration: 10")
    path = write_manifest(text)
    result = CliRunner().invoke(cli, ["plan", str(path)])
    lines = [line for line in result.stdout.splitlines() if "+♪ audio" in line]
    assert len(lines) == 3
    assert sum("≈10 credits" in line for line in lines) == 2
    assert sum("≈5 credits" in line for line in lines) == 1
    assert "3 audio to add" in result.stdout
    _code, plan, _ = run("plan", str(path), "--json")
    assert isinstance(plan, dict) and isinstance(plan["jobs"], list)
    audio = [j for j in plan["jobs"] if j["action"] == "audio"]
    assert [(j["id"], j["variant"], j["credits"]) for j in audio] == [
        ("garden.calm", 1, 5),
        ("garden.two", 1, 10),
        ("garden.two", 2, 10),
    ]
    videos = {j["id"]: j["fingerprint"] for j in plan["jobs"] if j["action"] == "create"}
    assert all(j["video"] == videos[j["id"]] for j in audio)
    summary = plan["summary"]
    assert isinstance(summary, dict)
    assert summary["audio"] == 3 and summary["credits"] == 20 + 80 + 20 + 5 + 2 * 10


def test_failed_video_gets_no_audio_and_the_run_ends(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A video that fails leaves its audio unbought (skipped, for a rerun); the run still ends."""
    emulator.emu.state.config = emulator.emu.config.with_(fail_share=1.0)
    path = write_manifest(manifest(emulator))
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.two")
    assert code == 1 and isinstance(summary, dict) and summary["failed"] == 1
    assert bought_audio(emulator) == 0 and audio_records(workdir) == []


def test_max_credits_holds_back_audio(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """--max-credits counts the audio stage: a budget for the video alone buys no audio."""
    path = write_manifest(manifest(emulator))
    args = ("run", str(path), "--yes", "--json", "--select", "garden.calm")
    code, summary, _ = run(*args, "--max-credits", "20")
    assert isinstance(summary, dict) and summary["outcome"] == "partial", summary
    assert summary["credits"] == 20 and bought_audio(emulator) == 0
    code, summary, _ = run(*args, "--max-credits", "5")
    assert code == 0 and isinstance(summary, dict) and summary["credits"] == 5
    assert bought_audio(emulator) == 1


def test_sigkill_after_the_audio_intent_never_pays_twice(
    served: str,  # noqa: F811 (the fixture imported above)
    write_manifest: WriteManifest,
    workdir: Path,
) -> None:
    """SIGKILL the runner as soon as an audio intent is on disk (its answer may or may not have
    been journaled); reruns re-query or report it, and the audio is charged at most once."""
    path = write_manifest(manifest_for(served))
    proc = subprocess.Popen(
        [*I2V, "run", str(path), "--yes", "-q", "--select", "garden.calm"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = workdir / "m.lock.yaml.journal"
    try:
        wait_for(
            lambda: (
                proc.poll() is not None
                or (journal.exists() and b'"video":' in journal.read_bytes())
            )
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    for _ in range(2):
        rerun = subprocess.run(
            [*I2V, "run", str(path), "--yes", "-q", "--select", "garden.calm"],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        assert rerun.returncode in (0, 1), rerun.stderr  # 1: an audio left unknown
    made = creates(served)["A calm scene"]  # the video, and its audio if the call left
    # the lock with any journal replayed (a run with nothing to do leaves the journal as is)
    (entry,) = [e for e in load_state(workdir / "m.lock.yaml").values() if e.video]
    if entry.state == "succeeded":  # the answer was journaled: resumed, never resent
        assert made == 2
        assert has_audio(workdir / "out" / "garden.calm.audio.mp4")
    else:  # killed before the answer was journaled: unknown, and never sent again unasked
        assert entry.state == "unknown" and made in (1, 2)
