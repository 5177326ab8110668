"""`i2v run` end to end against the emulator on a loopback port: idempotence, reruns, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.emulator import Faults
from i2v_pipeline.errors import LockError
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.spec.fingerprint import hash_file

from ..conftest import ThreadedEmulator, WriteManifest

MANIFEST = """\
version: 1
name: e2e
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - glob: "images/*.png"
prompts:
  - id: dolly
    template: "Dolly in on {{{{ image.id }}}}"
  - id: pan
    template: "Pan across {{{{ image.id }}}}"
output:
  dir: out
  path: "{{{{ image.id }}}}/{{{{ prompt.id }}}}.mp4"
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""


def run(*args: str) -> tuple[int, dict[str, object] | None, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        doc = None
    return result.exit_code, doc, result.stderr


def check_lock(lock: Path, base: Path) -> dict[str, dict[str, object]]:
    doc = yaml.safe_load(lock.read_text())
    schemas.validate("lock", doc, error_class=LockError)
    jobs = {j["id"]: j for j in doc["jobs"]}
    for job in jobs.values():
        for f in job.get("files", []):
            assert f is not None
            assert hash_file(base / f["path"]) == f["sha256"]
    return jobs


def test_run_then_rerun_is_free(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A run makes every video once; a rerun makes zero requests and exits 0."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["done"] == 6 and summary["created"] == 6
    assert emulator.creates() == 6
    jobs = check_lock(workdir / "m.lock.yaml", workdir)
    assert sorted(jobs) == [
        "garden.dolly",
        "garden.pan",
        "sunrise.dolly",
        "sunrise.pan",
        "tower.dolly",
        "tower.pan",
    ]
    assert all(j["state"] == "succeeded" and j["credits"] == 20 for j in jobs.values())
    lock_before = (workdir / "m.lock.yaml").read_text()
    before = emulator.requests()
    code, summary, _ = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["fresh"] == 6 and summary["done"] == 0
    assert emulator.requests() == before
    assert (workdir / "m.lock.yaml").read_text().split("\n", 3)[3] == lock_before.split("\n", 3)[3]
    assert not (workdir / "m.lock.yaml.journal").exists()


def test_changes_cost_only_what_changed(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A changed prompt recreates one job; a moved output is copied; a deleted file is
    downloaded again; none of these creates anything else."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    assert run("run", str(path), "--yes", "-q")[0] == 0
    assert emulator.creates() == 6

    write_manifest(text.replace("Pan across", "Slow pan across"))
    code, summary, _ = run("plan", str(path), "--json")
    assert summary is not None and summary["summary"]["replace"] == 3  # the pan prompt: 3 images
    assert summary["summary"]["orphan"] == 0 and summary["summary"]["create"] == 0
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.stdout.splitlines()[0] == (
        '-/+ replace  garden.pan     prompt: "Pan across garden" → "Slow pan across garden"'
        "  ≈20 credits"
    )
    assert result.stdout.endswith(
        "Plan: 3 to replace, 3 fresh. ≈ 60 credits (calibrated from the lock's charges)\n"
    )
    (job,) = [j for j in summary["jobs"] if j["id"] == "garden.pan"]  # type: ignore[attr-defined]
    assert job["changes"] == [
        {"field": "prompt", "old": "Pan across garden", "new": "Slow pan across garden"}
    ]
    write_manifest(
        text.replace('template: "Pan across', 'template: "Pan across').replace(
            "{{ prompt.id }}.mp4", "{{ prompt.id }}-v2.mp4"
        )
    )
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert emulator.creates() == 6  # relocation bought nothing
    assert (workdir / "out/garden/pan-v2.mp4").is_file() and (
        workdir / "out/garden/pan.mp4"
    ).is_file()

    (workdir / "out/tower/dolly-v2.mp4").unlink()
    code, summary, _ = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["done"] == 1
    assert emulator.creates() == 6
    check_lock(workdir / "m.lock.yaml", workdir)


def test_fault_injection_ends_right(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """5xx, throttling, failed jobs and truncated downloads: every job ends right, never twice."""
    emulator.emu.config = emulator.emu.config.with_(
        throttle_rps=20.0,
        faults={
            "batch": Faults(http_5xx=0.3),
            "results": Faults(http_5xx=0.2),
            "video": Faults(truncate=0.3),
        },
    )
    emulator.emu.state.config = emulator.emu.config.with_(fail_share=0.3)
    path = write_manifest(
        MANIFEST.format(url=emulator.base_url).replace(
            "create_rps: 50, request_rps: 100", "create_rps: 40, request_rps: 40"
        )
    )
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert summary is not None
    failed = summary["failed"]
    assert summary["done"] + failed == 6, (summary, err)
    assert code == (1 if failed else 0)
    assert emulator.creates() == 6  # 503s before processing were retried, nothing twice
    jobs = check_lock(workdir / "m.lock.yaml", workdir)
    for job in jobs.values():
        assert job["state"] in ("succeeded", "failed")
    # a rerun with --retry-failed eventually completes what failed, downloads what was truncated
    emulator.emu.state.config = emulator.emu.config.with_(fail_share=0.0)
    emulator.emu.config = emulator.emu.config.with_(faults={})
    code, summary, err = run("run", str(path), "--yes", "--retry-failed", "--json")
    assert code == 0, err
    jobs = check_lock(workdir / "m.lock.yaml", workdir)
    assert all(j["state"] == "succeeded" for j in jobs.values())


def test_dropped_create_answer_is_unknown_not_resent(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A create whose answer is lost is `? unknown`; it is sent again only when asked."""
    emulator.emu.config = emulator.emu.config.with_(faults={"batch": Faults(drop=1.0)})
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.dolly")
    assert code == 1 and summary is not None and summary["unknown"] == 1
    assert emulator.creates() == 1  # it was created remotely; we just never heard
    emulator.emu.config = emulator.emu.config.with_(faults={})
    code, plan, _ = run("plan", str(path), "--json", "--select", "garden.dolly")
    assert plan is not None and plan["jobs"][0]["action"] == "unknown"
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.dolly")
    assert emulator.creates() == 1  # not resent by default
    code, summary, _ = run(
        "run", str(path), "--yes", "--json", "--select", "garden.dolly", "--resubmit-unknown"
    )
    assert code == 0 and emulator.creates() == 2


def test_unknowns_are_unfinished_work_on_the_next_run(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """An unknown left by a run makes the next run, its --json and plan --check say so (exit 1)
    with the command that resolves it; never "Nothing to do"."""
    emulator.emu.config = emulator.emu.config.with_(faults={"batch": Faults(drop=1.0)})
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    run("run", str(path), "--yes", "--select", "garden.dolly")
    emulator.emu.config = emulator.emu.config.with_(faults={})
    code, summary, _ = run("run", str(path), "--yes", "--json", "--select", "garden.dolly")
    assert code == 1 and summary is not None
    assert summary["unknown"] == 1 and summary["outcome"] == "unfinished"
    assert f"i2v run {path} --select garden.dolly --only unknown --resubmit-unknown" in str(
        summary["next"]
    )  # the run's own jobs only
    code, _, err = run("run", str(path), "--yes", "--select", "garden.dolly")
    assert code == 1 and "Nothing to do" not in err
    assert "1 unknown" in err and "--resubmit-unknown" in err
    code, _, err = run("plan", str(path), "--check", "--select", "garden.dolly")
    assert code == 1 and "--resubmit-unknown" in err
    assert emulator.creates() == 1


def test_fatal_error_is_not_reported_as_nothing_to_do(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped by a fatal API error (1109) says it stopped, in text and in --json."""
    monkeypatch.setenv("AKOOL_API_KEY", "wrong-secret-value")
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, _, err = run("run", str(path), "--yes")
    assert code == 3 and "Nothing to do" not in err and "Stopped:" in err
    code, summary, _ = run("run", str(path), "--yes", "--json")
    assert code == 3 and summary is not None
    assert summary["outcome"] == "fatal" and "1109" in str(summary["fatal"])


def test_auth_failure_exits_3(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, monkeypatch: object
) -> None:
    """A bad API key stops the run with exit 3 and a hint; the key is never printed."""
    import pytest

    mp = monkeypatch
    assert isinstance(mp, pytest.MonkeyPatch)
    mp.setenv("AKOOL_API_KEY", "wrong-secret-value")
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, _, err = run("run", str(path), "--yes")
    assert code == 3
    assert "1109" in err and "AKOOL_API_KEY" in err
    assert "wrong-secret-value" not in err
    code, plan, _ = run("plan", str(path), "--json")
    assert plan is not None and plan["summary"]["create"] == 6  # nothing recorded as bought


def test_missing_credentials_exit_2(write_manifest: WriteManifest, monkeypatch: object) -> None:
    """A real endpoint without credentials is exit 2 naming the variables."""
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    for var in ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    path = write_manifest(MANIFEST.format(url="http://127.0.0.1:9"))
    code, _, err = run("run", str(path), "--yes")
    assert code == 2 and "AKOOL_API_KEY" in err


def test_max_credits_stops_submitting(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """--max-credits stops before the estimate would pass it."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    _, summary, _ = run("run", str(path), "--yes", "--max-credits", "45", "--json")
    assert summary is not None and summary["created"] == 2 and summary["skipped"] == 4
    assert emulator.creates() == 2


def test_expired_result_is_requeried_once_then_reported(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A missing file whose result URL answers 403 is re-queried once, then reported; nothing
    is bought again."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    assert run("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 0
    (workdir / "out/garden/dolly.mp4").unlink()
    emulator.emu.state.config = emulator.emu.state.config.with_(expiry=0.0)
    polls = emulator.requests("results")
    code, summary, err = run("run", str(path), "--yes", "--json", "--select", "garden.dolly")
    assert code == 1 and summary is not None and summary["failed"] == 1
    (problem,) = summary["problems"]  # type: ignore[misc]
    assert problem["id"] == "garden.dolly" and "HTTP 403" in problem["detail"], err
    assert emulator.requests("results") - polls == 2  # the poll, then one re-query
    assert emulator.creates() == 1


def test_prune_forgets_orphans_remote_and_local(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """After a prompt change, the superseded jobs are orphans; prune deletes them remotely and
    forgets them, and leaves files that a live job now owns."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    assert run("run", str(path), "--yes", "-q")[0] == 0
    old = {j["id"]: j for j in check_lock(workdir / "m.lock.yaml", workdir).values()}
    write_manifest(text.replace("Pan across", "Slow pan across"))
    assert run("run", str(path), "--yes", "-q")[0] == 0
    _, plan, _ = run("plan", str(path), "--json")
    assert plan is not None and plan["summary"]["orphan"] == 3
    code, result, err = run("prune", str(path), "--yes", "--json")
    assert code == 0, err
    assert result is not None and sorted(result["pruned"]) == [
        "garden.pan",
        "sunrise.pan",
        "tower.pan",
    ]
    for job_id in result["pruned"]:
        (rid,) = old[job_id]["remote_ids"]
        assert emulator.emu.state.jobs[rid].deleted
    _, plan, _ = run("plan", str(path), "--json")
    assert plan is not None and plan["summary"]["orphan"] == 0 and plan["summary"]["fresh"] == 6
    check_lock(workdir / "m.lock.yaml", workdir)  # the live jobs' files are still there


def test_prune_needs_yes_off_a_terminal(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """Without a terminal to ask on, prune refuses unless --yes."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    assert run("run", str(path), "--yes", "-q", "--select", "garden.*")[0] == 0
    pan = '  - id: pan\n    template: "Pan across {{ image.id }}"\n'
    assert pan in text
    write_manifest(text.replace(pan, ""))  # garden.pan is no longer in the manifest
    code, _, err = run("prune", str(path))
    assert code == 2 and "--yes" in err


def test_replaced_job_is_pruned_only_after_its_replacement_runs(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """A changed job's old entry is not an orphan while the replace is pending; after the run
    it is, and prune can remove it."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    assert run("run", str(path), "--yes", "-q", "--select", "garden.*")[0] == 0
    write_manifest(text.replace("Pan across", "Slow pan across"))
    _, plan, _ = run("plan", str(path), "--json", "--select", "garden.*")
    assert plan is not None and plan["summary"]["orphan"] == 0
    assert plan["summary"]["replace"] == 1
    assert run("run", str(path), "--yes", "-q", "--select", "garden.*")[0] == 0
    _, plan, _ = run("plan", str(path), "--json", "--select", "garden.*")
    assert plan is not None and plan["summary"]["orphan"] == 1


def test_status_refresh_asks_the_api(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """status --refresh shows what the API says now, next to what the lock records."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    assert run("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 0
    code, rows, _ = run("status", str(path), "--refresh", "--json")
    assert code == 0 and rows is not None
    (row,) = rows  # type: ignore[misc]
    assert row["state"] == "succeeded" and row["remote_now"] == [3]


@pytest.mark.parametrize("uvloop", ["1", "0"])
def test_a_run_works_on_either_event_loop(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    uvloop: str,
) -> None:
    """uvloop by default (a dependency here), the standard loop with I2V_UVLOOP=0: the same
    run, the same lock."""
    from i2v_pipeline.cli.run_exec import loop_options

    monkeypatch.setenv("I2V_UVLOOP", uvloop)
    assert loop_options() == ({"use_uvloop": True} if uvloop == "1" else {})
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["done"] == 6 and emulator.creates() == 6
    check_lock(workdir / "m.lock.yaml", workdir)
