"""The audio stage (`update_audio:`) in a campaign's life against the emulator: the manifest's
budget, saved plans, pre-flight output checks and the Markdown report count audio like video."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.spec import validation as schemas

from ..conftest import ThreadedEmulator, WriteManifest
from .test_audio import bought_audio

TWO_JOBS = """\
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
  - id: bold
    template: "A bold scene"
output:
  dir: out
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def two_jobs(emulator: ThreadedEmulator, extra: str = "") -> str:
    return TWO_JOBS.format(url=emulator.base_url) + extra


def test_budget_counts_audio_and_stops_before_the_audio_that_passes_it(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """budget.credits 45 between video-only (40) and video+audio (50): plan tallies 50 planned,
    the run buys both videos and one audio, then stops with exit 3."""
    path = write_manifest(two_jobs(emulator, "budget: {credits: 45}\n"))
    code, out, _ = invoke("plan", str(path), "--json")
    budget = json.loads(out)["budget"]
    assert budget["planned"] == 50 and budget["over"] == 5
    code, out, err = invoke("run", str(path), "--yes", "--json")
    assert code == 3, err
    summary = json.loads(out)
    assert summary["outcome"] == "budget" and summary["credits"] == 45
    assert emulator.requests("batch") == 2 and bought_audio(emulator) == 1


def test_saved_plan_with_audio_runs_exactly(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """`plan --out` of a manifest with update_audio writes a schema-valid plan with `audio`
    items; `run --plan` buys exactly its videos and audio."""
    path = write_manifest(two_jobs(emulator))
    plan = workdir / "p.json"
    assert invoke("plan", str(path), "--out", str(plan))[0] == 0
    doc = json.loads(plan.read_text())
    schemas.validate("plan", doc)
    assert [j["action"] for j in doc["jobs"]] == ["create", "audio", "create", "audio"]
    code, out, err = invoke("run", str(path), "--plan", str(plan), "--json")
    assert code == 0, err
    assert json.loads(out)["credits"] == 50
    assert emulator.requests("batch") == 2 and bought_audio(emulator) == 2


def test_markdown_report_rows_add_up_to_the_credits_spent_with_audio(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """`report --format md` lists each audio call on a row of its own (the header says so):
    the rows' credits add up to the credits spent."""
    path = write_manifest(two_jobs(emulator))
    assert invoke("run", str(path), "--yes", "-q")[0] == 0
    code, out, err = invoke("report", str(path), "--format", "md")
    assert code == 0, err
    assert "**credits**: 50 spent, 0 planned (the audio stage's calls on rows of their own)" in out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| garden.")]
    assert sorted(r[0] for r in rows) == [
        "| garden.bold", "| garden.bold ♪ audio", "| garden.calm", "| garden.calm ♪ audio"
    ]  # fmt: skip
    assert sum(int(r[2]) for r in rows) == 50
