"""Loading manifests: YAML, locations, schema errors with hints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.manifest import check_depth, load, parse_yaml

from .conftest import MINIMAL, REPO, WriteManifest


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


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("!!binary aGVsbG8=: 1\n", "keys must be strings, got b'hello'", ":1:1"),
        ("!!python/object:os.system {}: 1\n", "keys must be strings, got a list", ":1:1"),
        ("? !!python/name:os.system\n: 1\n", "python/name:os.system", ":1:3"),
        ("? !!python/tuple [a, b]\n: 1\n", "keys must be strings", ":1:3"),
        ("? [a, b]\n: 1\n", "keys must be strings, got a list or mapping", ":1:3"),
        ("x: 1\n1: a\n", "keys must be strings, got 1", ":2:1"),
        ("null: a\n", "keys must be strings, got None", ":1:1"),
        ("a: !!python/object/apply:os.system [ls]\n", "tag `tag:yaml.org,2002:python", ":1:4"),
        ("a: !!set {x, y}\n", "YAML tag `tag:yaml.org,2002:set` is not supported", ":1:4"),
        ("q: {<<: 1}\n", "bad merge key `<<`", ":1:9"),
        ("q: {<<: [1]}\n", "bad merge key `<<`", ":1:10"),
        ("a: &a {<<: *a}\n", "bad merge key `<<`", ":1:4"),
        ("a: &a [*a]\n", "alias refers to a value that contains it", ":1:4"),
        ("a: &a {x: 1}\nq: {<<: *a, x: 2, x: 3}\n", "duplicate key `x`", ":2:19"),
        ("a: " + "[" * 2000 + "]" * 2000 + "\n", "nests too deep", ""),
    ],
    ids=[
        "binary-key",
        "python-object-key",
        "python-name-key",
        "python-tuple-key",
        "complex-key",
        "int-key",
        "null-key",
        "python-apply-value",
        "set-tag",
        "merge-scalar",
        "merge-scalar-list",
        "merge-itself",
        "alias-cycle",
        "duplicate-after-merge",
        "deep-nesting",
    ],
)
def test_hostile_yaml_is_a_clean_error(
    write_manifest: WriteManifest, text: str, message: str, where: str
) -> None:
    """Tagged, complex and non-string keys, odd tags and bad merges are exit-2 errors."""
    path = write_manifest(text)
    with pytest.raises(ManifestError) as info:
        load(path)
    assert message in info.value.render()
    assert f"{path}{where}" in info.value.render()
    assert info.value.exit_code == 2


def test_merge_keys_may_be_overridden(write_manifest: WriteManifest) -> None:
    """`{<<: *base, id: q}` overrides the merged id; `<<: [*a, *b]` lets the first one win."""
    m = load(
        write_manifest(
            MINIMAL.replace(
                '  - id: a\n    template: "A calm scene"\n',
                "  - &base {id: p, template: 'Pan {{ x }}', vars: {x: slow}}\n"
                "  - {<<: *base, id: q}\n"
                "  - {<<: [{vars: {x: fast}}, *base], id: r}\n",
            )
        )
    )
    assert [p["id"] for p in m.data["prompts"]] == ["p", "q", "r"]
    assert m.data["prompts"][1]["template"] == "Pan {{ x }}"
    assert m.data["prompts"][2]["vars"] == {"x": "fast"}


def test_merged_override_reaches_the_expanded_jobs(write_manifest: WriteManifest) -> None:
    """A prompt built by merge-with-override expands into its own job with its own id."""
    c = load_campaign(
        write_manifest(
            MINIMAL.replace(
                '  - id: a\n    template: "A calm scene"\n',
                "  - &base {id: p, template: 'Pan {{ x }}', vars: {x: slow}}\n"
                "  - {<<: *base, id: q, vars: {x: fast}}\n",
            )
        )
    )
    by_id = {s.id: s for s in c.specs}
    assert by_id["garden.p"].request["prompt"] == "Pan slow"
    assert by_id["garden.q"].request["prompt"] == "Pan fast"


def test_shared_merged_mapping_survives_reuse() -> None:
    """A mapping with a merge and an override, reused by alias, is read the same each time."""
    value, _ = parse_yaml("x: &x {id: 0}\nb: &b {<<: *x, id: 1}\nc: *b\nd: {<<: *b, e: 2}\n", "f")
    assert value["b"] == value["c"] == {"id": 1}
    assert value["d"] == {"id": 1, "e": 2}


def test_anchors_on_keys_and_aliases_as_keys_work() -> None:
    """An anchored key's text may be reused as a value or as another key."""
    value, _ = parse_yaml("&k a: 1\nb: *k\nc: &v x\n*v : 2\n", "f.yaml")
    assert value == {"a": 1, "b": "a", "c": "x", "x": 2}


DEEP = 50_000


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("vars:\n  x: " + "[" * DEEP + "]" * DEEP + "\n", ":2:260"),
        ("x: " + "{a: " * 300 + "1" + "}" * 300 + "\n", ":1:1024"),
        ("".join(" " * i + f"k{i}:\n" for i in range(300)), ":257:1"),
        ("x: 1\n" + "- " * 300 + "y\n", ":2:1"),
        ("x: # |\n  " + "[" * 300 + "\n", ":2:257"),
    ],
    ids=["flow-lists", "flow-maps", "block-maps", "block-lists", "comment-is-no-scalar"],
)
def test_deep_documents_are_refused_before_parsing(text: str, where: str) -> None:
    """Nesting past MAX_DEPTH (flow or block) is refused at file:line:col before YAML parses."""
    with pytest.raises(ManifestError) as info:
        check_depth(text, "m.yaml")
    assert "nests too deep" in info.value.message
    assert info.value.where == f"m.yaml{where}"


@pytest.mark.parametrize(
    "text",
    [
        'a: "' + "[" * 400 + '"\n',
        "a: '" + "{" * 400 + "'\n",
        'a: ["]]]]", ' + "[" * 250 + "]" * 250 + "]\n",
        "a: |\n  " + "{" * 400 + "\nb: 1\n",
        "a: >-\n  " + "[" * 400 + "\n\n  more\nb: 1\n",
        "# " + "[" * 400 + "\na: 1\n",
        "a: " + "[" * 250 + "]" * 250 + "\nb: " + "[" * 250 + "]" * 250 + "\n",
    ],
    ids=[
        "double-quoted",
        "single-quoted",
        "quoted-closers",
        "literal",
        "folded",
        "comment",
        "siblings",
    ],
)
def test_brackets_in_text_do_not_count_as_nesting(text: str) -> None:
    """Brackets inside quoted scalars, block scalars and comments are text, not depth."""
    check_depth(text, "m.yaml")
    parse_yaml(text, "m.yaml")


def test_a_very_deep_manifest_is_an_error_not_a_crash(write_manifest: WriteManifest) -> None:
    """50,000 nested lists: `validate` exits 2 with a message (the C composer used to segfault)."""
    path = write_manifest(MINIMAL + "vars:\n  x: " + "[" * DEEP + "]" * DEEP + "\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(path.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "i2v_pipeline", "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}:9:260: the document nests too deep" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_number_too_long_to_read_is_located(write_manifest: WriteManifest) -> None:
    """A 5,000-digit integer in the YAML is an exit-2 error at its place, not a ValueError."""
    path = write_manifest(MINIMAL + "vars: {n: " + "9" * 5000 + "}\n")
    with pytest.raises(ManifestError, match="this number is too long to read") as info:
        load(path)
    assert info.value.where == f"{path}:8:11"


def test_schemas_use_only_keywords_the_compiled_check_reads_alike() -> None:
    """validate() trusts the compiled (draft 7) check when it passes: the schemas may use only
    keywords both validators read the same, and no `$ref` with siblings (draft 7 drops them)."""
    from i2v_pipeline.spec.validation import SCHEMA_NAMES, load_schema

    alike = {
        "$defs", "$id", "$ref", "$schema", "additionalProperties", "anyOf", "const", "default",
        "description", "else", "enum", "exclusiveMinimum", "if", "items", "maxLength", "maximum",
        "minItems", "minLength", "minProperties", "minimum", "oneOf", "pattern", "properties",
        "propertyNames", "required", "then", "title", "type",
    }  # fmt: skip

    def walk(node: object, names: bool) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                assert set(node) <= {"$ref", "description"}, node
            for key, value in node.items():
                assert names or key in alike, key
                walk(value, not names and key in ("properties", "$defs"))
        elif isinstance(node, list):
            for value in node:
                walk(value, False)

    for name in SCHEMA_NAMES:
        walk(load_schema(name), False)
