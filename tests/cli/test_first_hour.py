"""What a newcomer meets first: validate refusals, the emulator banner, wording (exact text)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.cli.emulator_cmds import banner
from i2v_pipeline.cli.progress import Eta
from i2v_pipeline.text import plural

from ..conftest import MINIMAL, ThreadedEmulator, WriteManifest


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_validate_refuses_local_images_for_a_remote_endpoint(
    write_manifest: WriteManifest,
) -> None:
    """Local images on a non-emulator endpoint without image_base_url fail at validate time."""
    path = write_manifest(MINIMAL + 'provider:\n  endpoint: "https://api.example.com"\n')
    code, out, err = invoke("validate", str(path))
    assert (code, out) == (2, "")
    assert err == (
        f"✗ {path}\n{path}:9:13: job garden.a uses the local image images/garden.png, which "
        "the endpoint https://api.example.com cannot read\n"
        "  hint: publish the images and set provider.image_base_url to their base URL, use "
        '`url:` images, or, for a local emulator, `image_base_url: "file://"`\n'
    )


def test_validate_passes_with_image_base_url(write_manifest: WriteManifest) -> None:
    """The same manifest with image_base_url validates; one job is `1 job`."""
    path = write_manifest(
        MINIMAL + 'provider:\n  endpoint: "https://api.example.com"\n'
        '  image_base_url: "https://cdn.example.com/in/"\n'
    )
    assert invoke("validate", str(path)) == (0, f"✓ {path}: 1 job\n", "")


def test_emulator_banner_is_a_complete_snippet(write_manifest: WriteManifest) -> None:
    """The serve banner's manifest snippet, pasted under a manifest, validates as is."""
    text = banner("http://127.0.0.1:8787", "emulator-key")
    assert text == (
        "AKOOL emulator on http://127.0.0.1:8787\n"
        "  api key: emulator-key  (x-api-key header)\n"
        "  in a manifest:\n"
        "    provider:\n"
        '      endpoint: "http://127.0.0.1:8787"\n'
        '      image_base_url: "file://"\n'
        "  then: AKOOL_API_KEY=emulator-key i2v run MANIFEST"
    )
    lines = text.splitlines()
    snippet = "\n".join(line[4:] for line in lines[lines.index("  in a manifest:") + 1 : -1])
    assert yaml.safe_load(snippet)["provider"]["image_base_url"] == "file://"
    path = write_manifest(MINIMAL + snippet + "\n")
    assert invoke("validate", str(path))[0] == 0


def test_ci_flags_take_environment_variables(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """I2V_JSON=1 makes `plan` print JSON; every such variable is named in --help."""
    path = str(write_manifest())
    monkeypatch.setenv("I2V_JSON", "1")
    code, out, _ = invoke("plan", path)
    assert code == 0 and json.loads(out)["summary"]["create"] == 1
    monkeypatch.setenv("I2V_CHECK", "1")
    assert invoke("plan", path)[0] == 1  # --check by environment
    monkeypatch.delenv("I2V_JSON")
    monkeypatch.delenv("I2V_CHECK")
    assert invoke("plan", path)[1].startswith("  + create")
    run_help = " ".join(invoke("run", "--help")[1].split())
    for var in ("I2V_MAX_CREDITS", "I2V_JSON", "I2V_YES", "I2V_VERIFY", "I2V_RETRY_FAILED"):
        assert f"[env var: {var}" in run_help
    assert "I2V_MAX_CREDITS=N" in invoke("--help")[1]


def test_max_credits_from_the_environment_caps_a_run(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """I2V_MAX_CREDITS=20 lets a 2-job run buy one job and skip the other."""
    text = MINIMAL + "  - id: b\n    template: other\n"
    text += f'provider: {{endpoint: "{emulator.base_url}", image_base_url: "file://"}}\n'
    path = str(write_manifest(text + "limits: {poll_interval: 0.05}\n"))
    monkeypatch.setenv("I2V_MAX_CREDITS", "20")
    code, out, err = invoke("run", path, "--yes", "--json")
    summary = json.loads(out)
    assert (code, summary["outcome"], summary["skipped"]) == (0, "partial", 1), err
    assert emulator.creates() == 1


def test_status_json_is_documented_in_help() -> None:
    """`status --help` names the JSON fields."""
    text = " ".join(invoke("status", "--help")[1].split())
    assert "Print a JSON array, one object per job: id, state, remote_ids" in text


def test_shell_completion_completes_commands() -> None:
    """The completion the --help epilog documents answers `i2v pl<TAB>` with plan."""
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="i2v",
        env={"_I2V_COMPLETE": "bash_complete", "COMP_WORDS": "i2v pl", "COMP_CWORD": "1"},
    )
    assert result.stdout == "plain,plan\n"
    assert 'eval "$(_I2V_COMPLETE=bash_source i2v)"' in invoke("--help")[1]


@pytest.mark.parametrize(
    ("n", "word", "text"),
    [
        (0, "job", "0 jobs"),
        (1, "job", "1 job"),
        (2, "video", "2 videos"),
        (1200, "credit", "1,200 credits"),
    ],
)
def test_plural(n: int, word: str, text: str) -> None:
    """Counts read as English: `1 job`, never `1 jobs` or `job(s)`."""
    assert plural(n, word) == text


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_eta_counts_down_between_finishes_and_does_not_jump() -> None:
    """The ETA comes from the observed pace, falls as time passes, and is blended at finishes."""
    clock = Clock()
    eta = Eta(4, clock)
    assert eta.text() == "-"  # nothing observed yet: no guess
    clock.t += 10
    eta.finished()  # 10 s per job, 3 left
    assert eta.text() == "30s"
    clock.t += 5
    assert eta.text() == "25s"  # counts down with no event
    clock.t += 25
    eta.finished()  # fresh: 20 s/job x 2 = 40; running: 0 -> blended 20
    assert eta.text() == "20s"
    clock.t += 100
    assert eta.text() == "0s"  # never negative
    eta.finished()
    eta.finished()
    assert eta.text() == "-"


def test_eta_formats_minutes_and_hours() -> None:
    """Long waits read as 3m05s and 1h02m."""
    clock = Clock()
    eta = Eta(2, clock)
    clock.t += 185
    eta.finished()
    assert eta.text() == "3m05s"
    eta = Eta(100, clock)
    clock.t += 38
    eta.finished()
    assert eta.text() == "1h02m"
