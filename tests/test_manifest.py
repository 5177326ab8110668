"""Loading manifests: YAML, locations, schema errors with hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.spec.manifest import load, parse_yaml

from .conftest import MINIMAL, WriteManifest


def test_loads_minimal_manifest(write_manifest: WriteManifest) -> None:
    """A minimal manifest loads and knows its name, folder and lock path."""
    m = load(write_manifest())
    assert m.name == "t"
    assert m.lock_path.name == "m.lock.yaml"
    assert m.base_dir == m.path.resolve().parent


def test_locations_point_at_values() -> None:
    """Every value keeps its line and column for error messages."""
    _, marks = parse_yaml("a:\n  b: [1, 2]\n  c: x\n", "f.yaml")
    assert marks[("a", "b", 1)] == (2, 10)
    assert marks[("a", "c")] == (3, 6)


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("version: 1\nname: t\nimages: [\n", "YAML syntax error", ":4:"),
        ("version: 1\nversion: 1\n", "duplicate key `version`", ":2:1"),
        ("- 1\n- 2\n", "must be a mapping", ":1:1"),
        (MINIMAL + "colour: red\n", "unknown key `colour`", ":8:"),
        (MINIMAL.replace("name: t", "name: 't'\nnaem: x"), "did you mean `name`", ":3:"),
        (MINIMAL.replace("version: 1", "version: 2"), "version: 1 was expected", ":1:"),
        (MINIMAL + "defaults: {duration: five}\n", "'five' is not of type 'integer'", ":8:"),
        (MINIMAL + "defaults: {audio: loud}\n", "'loud' is not one of", ":8:"),
        (MINIMAL + "limits: {jobs_in_flight: 0}\n", "less than the minimum", ":8:"),
    ],
    ids=[
        "syntax",
        "duplicate-key",
        "not-mapping",
        "unknown-key",
        "did-you-mean",
        "version",
        "wrong-type",
        "bad-enum",
        "bad-limit",
    ],
)
def test_bad_manifests_name_the_place(
    write_manifest: WriteManifest, text: str, message: str, where: str
) -> None:
    """Each kind of bad input is a ManifestError naming file:line:col."""
    path = write_manifest(text)
    with pytest.raises(ManifestError) as info:
        load(path)
    rendered = info.value.render()
    assert message in rendered
    assert f"{path}{where}" in rendered
    assert info.value.exit_code == 2


def test_alias_bomb_is_refused(write_manifest: WriteManifest) -> None:
    """A billion-laughs document is an error, not an out-of-memory."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(ManifestError, match="expands to more than"):
        load(write_manifest("\n".join(lines) + "\n"))


def test_merge_keys_and_aliases_work(write_manifest: WriteManifest) -> None:
    """Plain anchors, aliases and merge keys are fine within the bound."""
    m = load(write_manifest(MINIMAL + "vars: &v {a: 1}\ndefaults:\n  <<: {duration: 5}\n"))
    assert m.data["defaults"] == {"duration": 5}


def test_missing_file_has_hint(tmp_path: Path) -> None:
    """A missing manifest says so and where."""
    with pytest.raises(ManifestError, match="manifest not found"):
        load(tmp_path / "nope.yaml")
