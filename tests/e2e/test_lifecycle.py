"""A campaign's life against the emulator on a loopback port: saved plans applied exactly
(`plan --out`, `run --plan`), the manifest's budget, calibrated estimates, `i2v credits` and
the balance warning of `plan`."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.emulator import EmulatorConfig
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.spec.catalog import Catalog

from ..conftest import REPO, ThreadedEmulator, WriteManifest
from .test_publish import ImageServer
from .test_run import MANIFEST


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_saved_plan_is_applied_exactly(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """`plan --out` writes a schema-valid plan; `run --plan` does its work and nothing else."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    plan = workdir / "p.json"
    code, _, err = invoke("plan", str(path), "--out", str(plan))
    assert code == 0 and f"i2v run {path} --plan {plan}" in err
    doc = json.loads(plan.read_text())
    schemas.validate("plan", doc)
    assert doc["format_version"] == 1 and doc["lock"]["sha256"] is None
    assert doc["summary"]["create"] == 6 and doc["budget"]["planned"] == 120
    assert {j["estimate"] for j in doc["jobs"]} == {"price_table"}
    code, _, err = invoke("run", str(path), "--plan", str(plan), "-q")
    assert code == 0, err
    assert emulator.creates() == 6


def test_plan_made_with_a_shard_runs_only_that_shard(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A plan file made with --shard authorises only its jobs: the others are not submitted."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--shard", "1/2", "--out", str(plan))[0] == 0
    planned = {j["id"] for j in json.loads(plan.read_text())["jobs"]}
    assert 0 < len(planned) < 6
    code, _, err = invoke("run", str(path), "--plan", str(plan), "-q")
    assert code == 0, err
    assert emulator.creates() == len(planned)
    jobs = yaml.safe_load((workdir / "m.lock.yaml").read_text())["jobs"]
    assert {j["id"] for j in jobs} == planned


def test_plan_made_with_only_failed_retries_nothing_else(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A plan of `--only failed --retry-failed` sends the failed job again and no new job."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    emulator.emu.state.config = emulator.emu.state.config.with_(fail_share=1.0)
    assert invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 1
    emulator.emu.state.config = emulator.emu.state.config.with_(fail_share=0.0)
    plan = workdir / "p.json"
    code, _, _ = invoke("plan", str(path), "--only", "failed", "--retry-failed", "--out", str(plan))
    assert code == 0
    before = emulator.creates()
    code, out, err = invoke("run", str(path), "--plan", str(plan), "--json")
    assert code == 0, err
    assert emulator.creates() - before == 1 and json.loads(out)["created"] == 1


@pytest.mark.parametrize("what", ["manifest", "lock", "catalog"])
def test_stale_plan_is_refused_naming_what_changed(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path, what: str
) -> None:
    """A change to the manifest, the lock or the catalog after `plan --out` makes `run --plan`
    exit 2 before any request, naming which one and saying to plan again."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    assert invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 0
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    if what == "manifest":
        write_manifest(text + "# a comment\n")
    elif what == "lock":
        assert invoke("run", str(path), "--yes", "-q", "--select", "garden.pan")[0] == 0
    else:
        models = [dict(m.raw) for m in Catalog.bundled().models.values()]
        models[0] = {**models[0], "label": "renamed"}
        Catalog.save_cache(emulator.base_url, models)
    requests = emulator.requests()
    code, _, err = invoke("run", str(path), "--plan", str(plan))
    assert code == 2, err
    named = {"manifest": "the manifest m.yaml changed", "lock": "the lock m.lock.yaml changed"}
    assert named.get(what, "the model catalog changed") in err
    assert "is stale, nothing was sent" in err and "re-run `i2v plan" in err
    assert emulator.requests() == requests


def test_saved_plan_refuses_a_job_whose_image_changed(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """An input image edited after the plan (manifest and lock unchanged) makes the plan stale
    for that job: nothing is sent."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    image = workdir / "images" / "garden.png"
    image.write_bytes(image.read_bytes() + b"\0")
    requests = emulator.requests()  # plan asked for the balance
    code, _, err = invoke("run", str(path), "--plan", str(plan))
    assert code == 2 and "job garden.dolly is no longer planned" in err
    assert emulator.requests() == requests


def test_run_plan_refuses_selection_flags(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """--plan with a flag that would change the plan (--limit) is a usage error."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    code, _, err = invoke("run", str(path), "--plan", str(plan), "--limit", "1")
    assert code == 2 and "--limit cannot change it" in err


def test_not_a_plan_file(write_manifest: WriteManifest, workdir: Path) -> None:
    """A file that is not a plan is exit 2 with a clear message, no traceback."""
    path = write_manifest()
    (workdir / "p.json").write_text('{"format": "other"}')
    code, _, err = invoke("run", str(path), "--plan", str(workdir / "p.json"))
    assert code == 2 and "is not an i2v plan file" in err and "Traceback" not in err


def test_plan_out_refuses_to_overwrite_campaign_files(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """--out naming the manifest, its lock or journal, another YAML file, a recorded video or
    an input image, a symlink, or nothing: exit 2, the file is untouched."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    assert invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 0
    lock = workdir / "m.lock.yaml"
    video = next((workdir / "out").rglob("*.mp4"))
    other = workdir / "sub" / "other.yaml"
    other.parent.mkdir()
    other.write_text("version: 1\n")
    (workdir / "link.json").symlink_to(lock)
    image = workdir / "images" / "garden.png"
    targets = [path, lock, workdir / "m.lock.yaml.journal", other, video, image]
    targets.append(workdir / "link.json")
    for target in targets:
        before = target.read_bytes() if target.exists() else None
        code, _, err = invoke("plan", str(path), "--out", str(target))
        assert code == 2 and "Traceback" not in err, (target, err)
        assert "would overwrite" in err or "symbolic link" in err, err
        assert (target.read_bytes() if target.exists() else None) == before
    code, _, err = invoke("plan", str(path), "--out", "")
    assert code == 2 and "--out needs a file name" in err
    code, _, err = invoke("plan", str(path), "--out", "/proc/version")
    assert code == 2 and "cannot write the plan file /proc/version" in err
    assert "cannot create a file in /proc" in err
    assert not list(workdir.glob(".*.tmp"))


def test_saved_plan_refuses_a_fresh_job_that_now_plans_otherwise(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A job the plan lists as fresh whose video was deleted since (now a download) makes the
    plan stale: nothing is sent."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    assert invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")[0] == 0
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    next((workdir / "out").rglob("*.mp4")).unlink()
    requests = emulator.requests()
    code, _, err = invoke("run", str(path), "--plan", str(plan))
    assert code == 2 and "job garden.dolly was planned to fresh, now download" in err, err
    assert emulator.requests() == requests


def test_edited_plan_file_is_refused(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A plan file edited by hand (a job's id, the selection) is refused before any request."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    doc = json.loads(plan.read_text())
    doc["jobs"][0]["id"] = "renamed"
    plan.write_text(json.dumps(doc))
    requests = emulator.requests()
    code, _, err = invoke("run", str(path), "--plan", str(plan))
    assert code == 2 and "was edited" in err, err
    assert emulator.requests() == requests


def test_run_plan_ignores_environment_flags_that_agree(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """I2V_VERIFY=1 agreeing with the plan's options is no clash; disagreeing, the refusal
    names the variable."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    plan = workdir / "p.json"
    monkeypatch.setenv("I2V_VERIFY", "1")
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    code, _, err = invoke("run", str(path), "--plan", str(plan), "-q")
    assert code == 0, err
    monkeypatch.setenv("I2V_RETRY_FAILED", "1")
    code, _, err = invoke("run", str(path), "--plan", str(plan))
    assert code == 2 and "I2V_RETRY_FAILED" in err, err


README = (REPO / "README.md").read_text(encoding="utf-8")
BUDGET = "budget: {{credits: {n}}}\n"


def test_budget_stops_submitting_and_says_by_how_much(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """budget.credits 50 with 6 jobs of ~20: two are bought, then exit 3 naming the excess;
    plan shows spent / planned / budget."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url) + BUDGET.format(n=50))
    code, out, _ = invoke("plan", str(path))
    assert "Budget: 0 spent + 0 in flight + 120 planned (estimate) = 120 of 50 credits" in out
    assert "70 over budget" in out
    code, out, err = invoke("run", str(path), "--yes", "--json")
    assert code == 3, err
    assert "budget.credits 50 would be passed by 70 credits" in err
    assert "4 creates (~80 credits) not sent" in err
    summary = json.loads(out)
    assert emulator.creates() == 2 and summary["skipped"] == 4
    assert summary["outcome"] == "budget" and "budget.credits" in summary["next"]
    assert [p["event"] for p in summary["problems"]] == ["budget"]
    assert "passed by 70 credits" in summary["problems"][0]["detail"]
    code, out, _ = invoke("plan", str(path), "--json")
    budget = json.loads(out)["budget"]
    assert budget["spent"] == 40 and budget["planned"] == 80 and budget["over"] == 70
    requests = emulator.requests()
    code, out, err = invoke("run", str(path), "--yes", "--json")  # nothing fits: no request
    assert code == 3 and "would be passed by 70" in err
    assert json.loads(out)["outcome"] == "budget" and json.loads(out)["skipped"] == 4
    assert emulator.requests() == requests


def test_max_credits_still_caps_one_run_under_a_budget(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """--max-credits below the budget's room caps the run as before (partial, exit 0)."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url) + BUDGET.format(n=1000))
    code, out, _ = invoke("run", str(path), "--yes", "--max-credits", "45", "--json")
    assert code == 0 and json.loads(out)["created"] == 2 and emulator.creates() == 2


def test_estimates_calibrate_from_the_lock_charges(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the lock records actual charges, plan estimates the same model, resolution and
    duration from them (and says so) instead of from the price table."""
    monkeypatch.setattr(emulator.emu.state, "price", lambda fields: 7)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    assert invoke("run", str(path), "--yes", "-q", "--select", "garden.*")[0] == 0
    _, out, _ = invoke("plan", str(path))
    assert out.endswith(
        "Plan: 4 to create, 2 fresh. ≈ 28 credits (calibrated from the lock's charges)\n"
    )
    _, out, _ = invoke("plan", str(path), "--json")
    assert json.loads(out)["budget"]["spent"] == 14


def test_credits_command_shows_the_balance(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """`i2v credits` reads the account's balance from the quota endpoint, as text or JSON."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, out, _ = invoke("credits", "--manifest", str(path), "--json")
    assert code == 0 and json.loads(out)["credits"] == 1_000_000
    assert json.loads(out)["endpoint"] == emulator.base_url
    code, out, _ = invoke("credits", "--manifest", str(path))
    assert out == f"1,000,000 credits on {emulator.base_url}\n"
    assert emulator.requests("credit") == 2


@pytest.fixture
def poor_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AKOOL_API_KEY", "emulator-key")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = ThreadedEmulator(EmulatorConfig(credits=50, cache_dir=tmp_path / "renders"))
    yield server
    server.close()


def test_plan_warns_when_the_balance_is_short(
    poor_emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """plan on a configured (non-embedded) endpoint warns when the plan costs more than the
    account's balance, and is silent when it does not."""
    path = write_manifest(MANIFEST.format(url=poor_emulator.base_url))
    code, _, err = invoke("plan", str(path))
    assert code == 0 and "the plan needs ~120 credits and the account has 50" in err
    code, _, err = invoke("plan", str(path), "--select", "garden.dolly")
    assert code == 0 and "account has" not in err
    assert poor_emulator.requests("credit") == 2


def test_plan_balance_check_needs_no_credentials(
    poor_emulator: ThreadedEmulator, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without credentials plan still plans (no warning, no request, exit 0)."""
    monkeypatch.delenv("AKOOL_API_KEY")
    path = write_manifest(MANIFEST.format(url=poor_emulator.base_url))
    code, out, err = invoke("plan", str(path))
    assert code == 0 and "Plan: 6 to create" in out and "account has" not in err
    assert poor_emulator.requests() == 0


def readme_commands() -> list[list[str]]:
    """The `i2v` commands of the README's "A campaign's life" code blocks, in order."""
    section = README.split("## A campaign's life", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in section.split("```bash\n")[1:]:
        for line in block.split("```", 1)[0].splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("i2v "):
                commands.append(shlex.split(command)[1:])
    return commands


@pytest.fixture
def images() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


def test_readme_campaign_life_commands_run(
    emulator: ThreadedEmulator, images: ImageServer, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Each command of the README's "A campaign's life", run in order on a manifest with a
    budget and published images, succeeds; the saved plan is what the run buys."""
    text = MANIFEST.format(url=emulator.base_url).replace(
        'image_base_url: "file://"', f'image_base_url: "{images.url}/good"'
    )
    path = write_manifest(text + BUDGET.format(n=500))
    commands = readme_commands()
    assert [c[0] for c in commands] == [
        "credits", "credits", "publish-check", "plan", "report", "run"
    ]  # fmt: skip
    for command in commands:
        argv = [str(path) if a == "M" else a for a in command]
        argv = [str(workdir / "M.plan.json") if a == "M.plan.json" else a for a in argv]
        code, _, err = invoke(*argv)
        assert code == 0, (argv, err)
    assert emulator.creates() == 6
