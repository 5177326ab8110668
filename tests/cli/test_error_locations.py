"""Errors point at the line that is wrong, with a hint about that error (exact text)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli

from ..conftest import WriteManifest

HEAD = """\
version: 1
name: t
images:
  - path: images/garden.png
prompts:
  - id: a
    template: "A calm scene"
"""
MODELS_HINT = "  hint: `i2v models` lists each model's resolutions, durations and variant limits"


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "defaults:\n  duration: 7\n",
            ":9:13 (job garden.a): model AkoolImage2VideoFastV1 offers durations 5, 10 "
            f"(seconds), not 7\n{MODELS_HINT}",
        ),
        (
            "matrix:\n  resolution: [720p, 8k]\n",
            ":9:22 (job garden.a.8k): model AkoolImage2VideoFastV1 offers resolutions 720p, "
            f"1080p, 4k, not '8k'\n{MODELS_HINT}",
        ),
        (
            "images_fields: 0\n",
            ":8:16: images_fields: unknown key `images_fields` (did you mean `images`?)\n"
            "  hint: keys allowed here: budget, defaults, description, exclude, images, include,",
        ),
        (
            'jobs:\n  - id: j\n    image: garden\n    template: "x"\n    fields:\n'
            "      audio: custom\n",
            ":13:14 (job j): audio: custom needs an audio_url\n"
            "  hint: add `audio_url: https://…` (your audio file), or use `audio: ai`",
        ),
        (
            "defaults: {model: Nope}\n",
            ":8:19 (job garden.a): unknown model `Nope`\n"
            "  hint: `i2v models` lists the model names",
        ),
    ],
    ids=["defaults-duration", "matrix-resolution", "top-level-typo", "job-field-audio", "model"],
)
def test_catalog_error_points_at_the_field_that_set_it(
    write_manifest: WriteManifest, extra: str, expected: str
) -> None:
    """A catalog error names the line of the value (defaults, matrix entry, job field)."""
    path = write_manifest(HEAD + extra)
    code, err = validate(path)
    assert code == 2
    assert err.startswith(f"✗ {path}\n{path}{expected}"), err


def test_catalog_error_in_prompt_fields_points_there(write_manifest: WriteManifest) -> None:
    """A prompt's own `fields:` value wins over defaults, and the error says so."""
    path = write_manifest(
        HEAD + "    fields: {variants: 5, model: kwaivgi/kling-v3.0-std/image-to-video}\n"
    )
    _, err = validate(path)
    assert (
        f"{path}:8:24 (job garden.a): model kwaivgi/kling-v3.0-std/image-to-video makes at most 4"
        in err
    )


def test_typo_key_with_a_block_value_points_at_the_key(write_manifest: WriteManifest) -> None:
    """`fieldz:` followed by an indented block is reported on its own line, not the block's."""
    path = write_manifest(HEAD + "    fieldz:\n      duration: 5\n")
    code, err = validate(path)
    assert code == 2
    assert err == (
        f"✗ {path}\n{path}:8:5: prompts[0].fieldz: unknown key `fieldz` (did you mean "
        "`fields`?)\n  hint: keys allowed here: fields, id, tags, template, vars\n"
    )


def test_non_utf8_manifest_names_line_and_byte(write_manifest: WriteManifest) -> None:
    """A Latin-1 byte in a manifest is reported at its line, column and byte offset."""
    path = write_manifest(HEAD)
    path.write_bytes(HEAD.replace("calm", "cälm").encode("latin-1"))
    code, err = validate(path)
    assert code == 2
    assert err == (
        f"✗ {path}\n{path}:7:19: the manifest is not UTF-8 text: byte 0xe4 at byte offset 92 "
        "cannot be decoded\n  hint: save the file as UTF-8 (an editor's 'encoding' setting; "
        "`iconv -f latin1 -t utf-8`)\n"
    )


LOCK = """\
version: 1
manifest: m.yaml
generated_by: i2v run m.yaml
endpoint: emulator
jobs:
- {"id": "a", "fingerprint": "FA", "state": "unknown", "attempt": "x", "intent_at": "T"}
- {"id": "b", "fingerprint": "FB", "state": "unknown", "attempt": "x", "intent_at": "T"}
""".replace("FA", "f" * 64).replace("FB", "e" * 64)


def test_truncated_lock_names_the_cut_line(write_manifest: WriteManifest) -> None:
    """A lock cut off mid-entry is reported at the cut line, as a truncation."""
    write_manifest(HEAD)
    lock = write_manifest(LOCK[:-30], name="m.lock.yaml")
    code, err = validate(lock)
    assert code == 2
    assert err.startswith(
        f"✗ {lock}\n{lock}:7: the lockfile is corrupt or not an i2v lock: line 7 (byte 233): "
        "the line is cut short or damaged (unexpected end of data: line 1 column 120 (char 119))"
        "\n  hint: inspect this file:"
    ), err


def test_non_utf8_lock_names_line_and_byte(write_manifest: WriteManifest) -> None:
    """A non-UTF-8 byte in a lock is reported at its line, column and byte offset."""
    lock = write_manifest(HEAD, name="m.lock.yaml")
    lock.write_bytes(LOCK.replace('"x"', '"\xe9"', 1).encode("latin-1"))
    code, err = validate(lock)
    assert code == 2
    assert err.startswith(
        f"✗ {lock}\n{lock}:6:130: the lockfile is corrupt or not an i2v lock: not UTF-8 text "
        "(byte offset 211)\n"
    ), err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "verify: loud\n",
            ":8:9: verify: 'loud' is not one of ['strict', 'warn', 'off']\n"
            "  hint: use one of: strict, warn, off\n",
        ),
        (
            "vars: {n: 6000}\n",
            ":7:15 (job garden.a): request.prompt: is too long (6,000 characters)\n"
            "  hint: shorten it to at most 5,000 characters\n",
        ),
    ],
    ids=["enum", "too-long"],
)
def test_schema_hints_are_about_the_error(
    write_manifest: WriteManifest, extra: str, expected: str
) -> None:
    """A bad enum value hints the choices; an over-long prompt says its length and the limit."""
    text = HEAD + extra
    if "vars" in extra:
        text = text.replace('"A calm scene"', "\"{{ 'x' * n }}\"")
    path = write_manifest(text)
    code, err = validate(path)
    assert code == 2
    assert err == f"✗ {path}\n{path}{expected}"
