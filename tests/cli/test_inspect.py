"""The look-only commands through the real CLI: exit codes and the text that matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2v_pipeline.cli import cli
from i2v_pipeline.spec.campaign import load_campaign

from ..conftest import MINIMAL, REPO, WriteManifest


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_plan_summary_and_check(write_manifest: WriteManifest) -> None:
    """`plan` lists creates with a summary; --check exits 1 when there is work."""
    path = str(write_manifest())
    code, out, _ = run("plan", path)
    assert code == 0
    assert "+ create   garden.a  new job" in out
    assert "Plan: 1 to create. ≈ 20 credits" in out
    assert run("plan", path, "--check")[0] == 1


def test_plan_json_shape(write_manifest: WriteManifest) -> None:
    """`plan --json` prints a stable machine shape."""
    code, out, _ = run("plan", str(write_manifest()), "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["summary"]["create"] == 1 and doc["summary"]["credits"] == 20
    assert doc["jobs"][0] == {
        "action": "create",
        "symbol": "+",
        "id": "garden.a",
        "fingerprint": doc["jobs"][0]["fingerprint"],
        "reason": "new job",
        "credits": 20,
    }


def test_user_errors_exit_2_without_traceback(write_manifest: WriteManifest) -> None:
    """A bad manifest prints file:line:col and a hint, exit 2, no traceback."""
    path = write_manifest(MINIMAL.replace("A calm scene", "{{ missing_var }}"))
    code, _, err = run("plan", str(path))
    assert code == 2
    assert f"error: {path}:7:15: job garden.a: prompt: 'missing_var' is undefined" in err
    assert "hint:" in err and "Traceback" not in err


def test_validate_all_examples() -> None:
    """Every shipped manifest (and any lockfile a quickstart run left beside them) validates."""
    paths = sorted(str(p) for p in (REPO / "manifests").glob("*.yaml"))
    code, out, err = run("validate", *paths)
    assert code == 0, err
    assert out.count("✓") == len(paths) >= 2


def test_validate_reports_each_bad_file(write_manifest: WriteManifest) -> None:
    """validate checks every file and exits 2 if any is bad."""
    good = write_manifest()
    bad = write_manifest("version: 1\n", name="bad.yaml")
    code, out, err = run("validate", str(good), str(bad))
    assert code == 2
    assert "✓" in out and f"✗ {bad}" in err and "'name' is required" in err


def test_expand_json_matches_job_schema(write_manifest: WriteManifest) -> None:
    """expand --json prints specs valid against job.schema.json."""
    from i2v_pipeline.spec import validation as schemas

    code, out, _ = run("expand", str(write_manifest()), "--json")
    jobs = json.loads(out)
    assert code == 0 and len(jobs) == 1
    schemas.validate("job", jobs[0])
    assert jobs[0]["request"]["prompt"] == "A calm scene"


def test_schema_command_prints_json() -> None:
    """`i2v schema lock` prints the lock schema."""
    code, out, _ = run("schema", "lock")
    assert code == 0 and json.loads(out)["title"] == "i2v lockfile"


def test_corrupt_lock_is_exit_2(write_manifest: WriteManifest, workdir: Path) -> None:
    """A corrupt lock stops plan with the file to inspect."""
    path = write_manifest()
    (workdir / "m.lock.yaml").write_text("jobs: {{{\n")
    code, _, err = run("plan", str(path))
    assert code == 2 and "inspect this file" in err and "do not delete it" in err


def test_damaged_journal_line_warns_and_keeps_created(
    write_manifest: WriteManifest, workdir: Path
) -> None:
    """A damaged journal line mid-file: plan and status warn and go on with later records."""
    path = write_manifest()
    (fp,) = (s.fingerprint for s in load_campaign(str(path)).specs)
    intent = {
        "t": "intent",
        "fp": fp,
        "id": "garden.a",
        "attempt": "a1",
        "at": "2026-01-01T00:00:00Z",
    }
    created = {
        "t": "created",
        "fp": fp,
        "attempt": "a1",
        "ids": ["r1"],
        "at": "2026-01-01T00:00:01Z",
    }
    lines = [json.dumps(intent), '{"t": "status", "fp": "ab', json.dumps(created)]
    (workdir / "m.lock.yaml.journal").write_text("\n".join(lines) + "\n")
    code, out, err = run("plan", str(path))
    assert code == 0, err
    assert "m.lock.yaml.journal:2: damaged record skipped" in err
    assert "~ resume" in out
    code, out, _ = run("status", str(path))
    assert code == 0 and out.startswith("submitted garden.a")


yaml_text = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "name",
                    "images",
                    "prompts",
                    "path",
                    "id",
                    "template",
                    "defaults",
                    "matrix",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=yaml_text)
def test_any_yaml_gives_plan_or_clean_error(write_manifest: WriteManifest, doc: object) -> None:
    """Whatever the YAML document, plan exits 0 or 2 and never with a traceback."""
    path = write_manifest(json.dumps(doc))
    code, _, err = run("plan", str(path))
    assert code in (0, 2)
    assert "Traceback" not in err


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet="{}[]:-&*!| \n\"'abc12#%@`", max_size=60))
def test_any_text_gives_plan_or_clean_error(write_manifest: WriteManifest, text: str) -> None:
    """Arbitrary bytes of YAML syntax give a clean exit 2, never a crash."""
    code, _, err = run("plan", str(write_manifest(text)))
    assert code == 2 and err.startswith("error: ")


def test_validate_checks_lockfiles(workdir: Path) -> None:
    """`validate` checks a *.lock.yaml against the lock schema instead of as a manifest."""
    from i2v_pipeline.model import LockEntry
    from i2v_pipeline.state.lock import compact

    lock = workdir / "m.lock.yaml"
    entry = LockEntry(
        job_id="a",
        fingerprint="f" * 64,
        state="unknown",
        attempt="x",
        intent_at="2026-01-01T00:00:00Z",
    )
    compact(lock, {entry.fingerprint: entry}, manifest="m.yaml", command="t", endpoint="emulator")
    code, out, _ = run("validate", str(lock))
    assert code == 0 and "lockfile, 1 job" in out
    lock.write_text(lock.read_text().replace('"unknown"', '"lost"'))
    code, _, err = run("validate", str(lock))
    assert code == 2 and "inspect this file" in err and "do not delete it" in err


def test_models_refresh_effects_and_status(
    write_manifest: WriteManifest, tmp_path: Path, monkeypatch: object
) -> None:
    """models --refresh on the embedded emulator says it serves the bundled snapshot (nothing
    cached), effects lists codes, status reads the lock."""
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, err = run("models", "--refresh")
    assert code == 0 and "the emulator serves the bundled snapshot (4 models)" in err
    assert out.startswith("# catalog for emulator: bundled snapshot (AKOOL model list")
    assert "kwaivgi/kling-v3.0-pro/image-to-video" in out
    assert not (tmp_path / "cache" / "i2v" / "models").exists()
    code, out, _ = run("effects")
    assert code == 0 and "squish_89244231312  Squish" in out
    code, out, _ = run("status", str(write_manifest()))
    assert code == 0 and "0 jobs in" in out


def test_json_output_is_the_standard_spelling_and_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """print_json writes what json.dumps(indent=2, ensure_ascii=False) writes (orjson, with the
    standard library for what orjson refuses), and masks a secret from the environment."""
    import click

    from i2v_pipeline.cli.common import print_json

    doc = {"a": [], "b": {}, "c": [{"x": "é ☃ \u2028", "n": None, "t": True}], "big": 1}

    def printed(obj: object) -> str:
        with CliRunner().isolation() as (out, _, _):
            with click.Context(click.Command("x")):
                print_json(obj)
            return out.getvalue().decode()

    assert printed(doc) == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    doc["big"] = 1 << 70  # past orjson's 64 bits
    assert printed(doc) == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    monkeypatch.setenv("AKOOL_API_KEY", "key-from-the-env-123")
    assert printed({"echo": "key-from-the-env-123"}) == '{\n  "echo": "***"\n}\n'


def test_plan_listing_of_many_jobs_is_whole_and_in_order(write_manifest: WriteManifest) -> None:
    """A plan longer than one write (the listing goes out in chunks) prints every job once, in
    plan order, with the summary last."""
    from i2v_pipeline.cli import inspect

    moods = ", ".join(f"m{i}" for i in range(inspect._CHUNK + 7))
    path = write_manifest(
        MINIMAL.replace("prompts:", f"matrix: {{mood: [{moods}]}}\nprompts:").replace(
            '"A calm scene"', '"A calm scene, {{ mood }}"'
        )
    )
    code, out, _ = run("plan", str(path))
    lines = out.splitlines()
    specs = load_campaign(path).specs
    assert code == 0 and len(specs) > inspect._CHUNK
    assert [line.split()[2] for line in lines[:-1]] == [s.id for s in specs]
    assert lines[-1].startswith(f"Plan: {len(specs)} to create.")


def test_json_masks_secrets_in_values_never_breaking_the_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret is masked inside strings (keys too), also where JSON escapes it; a number or a
    key that happens to equal it stays valid JSON."""
    import click

    from i2v_pipeline.cli.common import print_json

    def printed(obj: object) -> str:
        with CliRunner().isolation() as (out, _, _):
            with click.Context(click.Command("x")):
                print_json(obj)
            return out.getvalue().decode()

    monkeypatch.setenv("AKOOL_API_KEY", "120000")
    assert json.loads(printed({"credits": 120000, "k": "x120000y"})) == {
        "credits": 120000,
        "k": "x***y",
    }
    monkeypatch.setenv("AKOOL_API_KEY", 'back\\sl"ash')
    out = printed({'back\\sl"ash': ['a back\\sl"ash b']})
    assert json.loads(out) == {"***": ["a *** b"]} and "sl" not in out


def test_plan_text_shows_controls_escaped_and_masks_secrets(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt's escape codes, newlines and bidi overrides reach the terminal escaped (a
    manifest cannot move the cursor or hide lines), and a secret in it is masked, as in JSON."""
    path = write_manifest()
    assert run("run", str(path), "--yes", "-q")[0] == 0
    prompt = "A calm\\nscene \\u001b[2K\\u001b[1Ahidden \\u202e topsecretXYZ \\u009b31m"
    path.write_text(path.read_text().replace('"A calm scene"', f'"{prompt}"'))
    monkeypatch.setenv("AKOOL_API_KEY", "topsecretXYZ")
    code, out, _ = run("plan", str(path))
    assert code == 0
    assert not any(c in out for c in "\x1b\u202e\x9b\r") and out.count("\n") == 2, out
    assert "\\u001b[2K" in out and "\\n" in out and "topsecret" not in out and "***" in out
    code, out, _ = run("expand", str(path))
    assert "\x1b" not in out and "\\u001b[1A" in out and "topsecret" not in out


def test_a_template_rendering_a_lone_surrogate_is_a_template_error(
    write_manifest: WriteManifest,
) -> None:
    """Jinja's `"\\ud800"` renders a lone surrogate, which cannot be hashed or sent: the
    manifest is refused where the template is, not with a UnicodeEncodeError."""
    path = write_manifest(MINIMAL.replace('"A calm scene"', "'Calm {{ \"\\ud800\" }} scene'"))
    code, _, err = run("validate", str(path))
    assert code == 2 and "lone surrogate" in err and "m.yaml:7" in err and "Traceback" not in err
