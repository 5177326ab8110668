"""A lock is data (it may come from a pull request): what prune deletes, what a run copies and
what status and a stopped run report stay inside the manifest's folder and true to the state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.cli.common import Selection, plan_campaign
from i2v_pipeline.cli.resume import Again
from i2v_pipeline.cli.run_cmds import _finish
from i2v_pipeline.errors import Interrupted
from i2v_pipeline.model import FileRecord, LockEntry, RunStats
from i2v_pipeline.run.delivery import Delivery
from i2v_pipeline.run.download import Policy
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.fingerprint import hash_file
from i2v_pipeline.state.journal import apply, journal_path
from i2v_pipeline.state.lock import compact
from i2v_pipeline.state.plan import PlanOptions

from ..conftest import MINIMAL, ThreadedEmulator, WriteManifest
from .test_run import MANIFEST

TWO_PROMPTS = MINIMAL + '  - id: b\n    template: "A bold scene"\n'


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def orphan_line(path: str, content: bytes) -> str:
    """A lock line for a job the manifest does not ask for, naming path as its file."""
    job = {
        "id": "gone.job",
        "fingerprint": "a" * 64,
        "state": "succeeded",
        "attempt": "x1",
        "files": [{"path": path, "sha256": "0" * 64, "bytes": len(content), "mtime_ns": 1}],
    }
    return "- " + json.dumps(job) + "\n"


@pytest.mark.parametrize("where", ["../victim.txt", "ABS"])
def test_prune_refuses_a_lock_naming_files_outside(
    write_manifest: WriteManifest, workdir: Path, where: str
) -> None:
    """A lock line naming `../x` or an absolute path stops prune (exit 2); the file survives."""
    path = write_manifest()
    victim = workdir.parent / "victim.txt" if where != "ABS" else workdir / "elsewhere.txt"
    victim.write_bytes(b"precious")
    rel = "../victim.txt" if where != "ABS" else str(victim)
    header = "version: 1\nmanifest: m.yaml\njobs:\n"
    (workdir / "m.lock.yaml").write_text(header + orphan_line(rel, b"precious"))
    for command in (["validate", str(workdir / "m.lock.yaml")], ["prune", str(path), "--yes"]):
        code, out, err = run(*command, "--keep-remote") if command[0] == "prune" else run(*command)
        assert code == 2, (out, err)
        assert "m.lock.yaml" in err and "file path" in err
    assert victim.read_bytes() == b"precious"


def test_prune_deletes_only_files_it_can_prove_are_its_own(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Prune keeps an orphan's file that changed or links out of the output folder, and says
    why; an intact file inside is deleted."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    assert run("run", str(path), "--yes", "-q")[0] == 0
    out = workdir / "out"
    edited, linked, intact = out / "garden/pan.mp4", out / "sunrise/pan.mp4", out / "tower/pan.mp4"
    edited.write_bytes(b"x" * edited.stat().st_size)
    outside = workdir / "outside.mp4"
    outside.write_bytes(linked.read_bytes())
    linked.unlink()
    linked.symlink_to(outside)
    write_manifest(text.replace('  - id: pan\n    template: "Pan across {{ image.id }}"\n', ""))
    code, _, err = run("prune", str(path), "--yes", "--keep-remote")
    assert code == 0, err
    assert "kept out/garden/pan.mp4: its content is not the video the lock records" in err
    assert "kept out/sunrise/pan.mp4: it is not a regular file inside the output folder" in err
    assert edited.exists() and linked.is_symlink() and outside.exists()
    assert not intact.exists()


@pytest.mark.anyio
async def test_relocation_copies_only_from_inside_the_output_folder(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """A recorded file that links out of the output folder is not copied to the new path; a
    regular file inside is, and recorded."""
    path = write_manifest(MINIMAL + "output:\n  dir: out\n")
    (spec,) = load_campaign(str(path)).specs
    out = workdir / "out"
    out.mkdir()
    secret = workdir / "secret.txt"
    secret.write_bytes(b"top secret")
    (out / "old.mp4").symlink_to(secret)
    rec = FileRecord("out/old.mp4", hash_file(secret), len(b"top secret"), None, None)
    entry = LockEntry(spec.id, spec.fingerprint, "succeeded", "a1", files=(rec,))
    recorded: list[dict[str, object]] = []

    async def requery(rid: str) -> str | None:
        raise AssertionError("relocation never asks the API")

    delivery = Delivery(
        session=None,  # type: ignore[arg-type]  # relocation never downloads
        base_dir=workdir,
        prefix="out",
        entries={spec.fingerprint: entry},
        record=recorded.append,
        requery=requery,
        concurrent=1,
        policy=Policy(),
    )
    with pytest.raises(PermissionError, match="not a regular file inside the output folder"):
        await delivery.relocate(spec)
    assert not (out / spec.output).exists() and recorded == []
    (out / "old.mp4").unlink()
    (out / "old.mp4").write_bytes(b"top secret")
    await delivery.relocate(spec)
    assert (out / spec.output).read_bytes() == b"top secret"
    assert [r["path"] for r in recorded] == [f"out/{spec.output}"]


def journal_jobs(workdir: Path, path: Path) -> list[str]:
    """Journal job a as unknown (intent only) and job b as submitted; returns fingerprints."""
    specs = load_campaign(str(path)).specs[:2]
    lines = []
    for spec in specs:
        lines.append({"t": "intent", "fp": spec.fingerprint, "id": spec.id, "attempt": "a1"})
        lines[-1]["at"] = "2026-01-01T00:00:00Z"
    created = {"t": "created", "fp": specs[1].fingerprint, "attempt": "a1", "ids": ["r1"]}
    lines.append({**created, "at": "2026-01-01T00:00:01Z"})
    text = "".join(json.dumps(r) + "\n" for r in lines)
    journal_path(workdir / "m.lock.yaml").write_text(text)
    return [s.fingerprint for s in specs]


def test_status_json_downloaded_only_when_files_are_held(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """`status --json` says downloaded false for an unknown job and a submitted one."""
    path = write_manifest(TWO_PROMPTS)
    journal_jobs(workdir, path)
    code, out, err = run("status", str(path), "--json")
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["garden.a"]["state"] == "unknown" and rows["garden.b"]["state"] == "submitted"
    assert rows["garden.a"]["downloaded"] is False and rows["garden.b"]["downloaded"] is False
    code, out, _ = run("status", str(path))
    assert "not downloaded" not in out  # nothing finished is missing


def test_interrupted_summary_counts_what_is_left(
    write_manifest: WriteManifest, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On interrupt the summary counts jobs not sent and still running, and names `i2v run`."""
    path = write_manifest(TWO_PROMPTS + "  - id: c\n    template: x\n")
    planned = plan_campaign(load_campaign(str(path)), PlanOptions(), Selection())
    journal_jobs(workdir, path)  # during the run: a sent, no answer; b sent and running
    fps = [s.fingerprint for s in planned.campaign.specs]
    stats = RunStats(created=1, credits=20)
    for rec in journal_path(workdir / "m.lock.yaml").read_text().splitlines():
        apply(planned.entries, json.loads(rec))
    assert set(planned.entries) == set(fps[:2])
    again = Again(str(path), Selection())
    with pytest.raises(Interrupted):
        _finish(planned, stats, 1.0, True, False, True, [], again)
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 1 and summary["running"] == 1 and summary["unknown"] == 1
    assert summary["next"] == f"i2v run {path}"
    with pytest.raises(Interrupted) as info:
        _finish(planned, stats, 1.0, False, False, True, [], again)
    err = capsys.readouterr().err
    assert "1 unknown, 1 not sent, 1 still running remotely" in err
    assert info.value.hint == f"resume with: i2v run {path}"
    again = Again(str(path), Selection(patterns=("a*", "b c"), limit=3), True, max_credits=40)
    with pytest.raises(Interrupted) as info:  # the same jobs; --limit, --max-credits: what is left
        _finish(planned, stats, 1.0, False, False, True, [], again)
    want = f"i2v run {path} --select 'a*' --select 'b c' --limit 2 --retry-failed --max-credits 20"
    assert info.value.hint == f"resume with: {want}"
    err = capsys.readouterr().err  # the unknown's advice is about the run's jobs only
    assert f"`i2v run {path} --select 'a*' --select 'b c' --only unknown --resubmit-unknown`" in err
    failed = RunStats(created=1, credits=20, failed=1)  # a job failed in this run: retrying it
    assert "--retry-failed" not in again.command(failed, 2)  # would be a new decision
    assert (
        Again(str(path), Selection(), plan_file="p.json").command()
        == f"i2v run {path} --plan p.json"
    )
    compact(planned.campaign.lock_path, planned.entries, manifest="m", command="c", endpoint="e")
    _, out, _ = run("plan", str(path), "--json")
    doc = json.loads(out)["summary"]
    assert (doc["create"], doc["resume"], doc["unknown"]) == (1, 1, 1)  # the summary agreed


@pytest.mark.parametrize("damaged", ["intent", "created"])
def test_a_damaged_journal_line_never_plans_a_second_purchase(
    write_manifest: WriteManifest, workdir: Path, damaged: str
) -> None:
    """Random bytes over a job's intent: it resumes; over its `created`: it is unknown. Never
    `+ create`, and the warning says what was skipped in words."""
    path = write_manifest(TWO_PROMPTS)
    journal_jobs(workdir, path)
    jp = journal_path(workdir / "m.lock.yaml")
    lines = jp.read_bytes().split(b"\n")
    n = 1 if damaged == "intent" else 2  # b's intent, or b's created
    lines[n] = lines[n][:20] + bytes(range(120, 250)) + lines[n][20:]
    jp.write_bytes(b"\n".join(lines))
    code, out, err = run("plan", str(path))
    assert code == 0, err
    line = next(x for x in out.splitlines() if "garden.b" in x)
    assert line.lstrip().startswith("~ resume" if damaged == "intent" else "? unknown"), out
    assert f"m.lock.yaml.journal:{n + 1}: damaged record skipped" in err
    assert "Error" not in err
