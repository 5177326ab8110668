"""The fast schema checks: cached compiled checks, plain string checks, the jobs-item check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from i2v_pipeline.spec import compiled
from i2v_pipeline.spec.validation import _job_item_check, load_schema, passes, string_check

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}


def _cached(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("*.marshal"))


def test_compiled_checks_never_live_in_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code read back from a folder CI shares between jobs would run: the cache is the
    package's own __pycache__, nothing under XDG_CACHE_HOME."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiled.compile_check({**SCHEMA, "title": "never cached in the user's folder"})
    assert not list(tmp_path.rglob("*.marshal"))
    assert compiled.cache_dir().name == "__pycache__"
    assert compiled.cache_dir().parent == Path(compiled.__file__).resolve().parent


def test_compiled_checks_are_cached_and_damage_costs_only_a_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first compile writes the cache, the next reads it; a damaged file is compiled anew
    (and rewritten), and a changed schema is another file."""
    monkeypatch.setattr(compiled, "cache_dir", lambda: tmp_path)
    first = compiled.compile_check(SCHEMA)
    (path,) = _cached(tmp_path)
    again = compiled.compile_check(SCHEMA)
    assert again is not first  # from the cache, not from memory
    for check in (first, again):
        assert passes(check, {"n": 2}) and not passes(check, {"n": 0})
    path.write_bytes(b"\x00damaged")
    assert not passes(compiled.compile_check(SCHEMA), {"n": "x"})
    assert _cached(tmp_path) == [path] and path.read_bytes() != b"\x00damaged"
    compiled.compile_check({**SCHEMA, "required": ["n"]})
    assert len(_cached(tmp_path)) == 2


def test_an_unwritable_cache_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache folder that cannot be made (here: a file is in the way) only costs the compile."""
    (tmp_path / "i2v").write_text("not a folder")
    monkeypatch.setattr(compiled, "cache_dir", lambda: tmp_path / "i2v")
    assert passes(compiled.compile_check(SCHEMA), {"n": 3})


VALUES: list[Any] = [
    "", "a", "a1.b_c-d", "-a", "a" * 255, "a" * 256, "a\n", "a b", "é", 5, None, ["a"],
    "x.mp4", "/x.mp4", "\\x.mp4", "x", "dir/x.MP4", "x.mp4\n", "a\nb.mp4", "p" * 5000, "p" * 5001,
]  # fmt: skip


@pytest.mark.parametrize(
    "where",
    [("id",), ("output",), ("request", "prompt"), ("request", "negative_prompt")],
)
def test_string_checks_never_pass_what_the_compiled_check_refuses(where: tuple[str, ...]) -> None:
    """A job's free text is gated by a plain Python check taken from the same subschema: it
    agrees with the compiled check, or is stricter (then the full validation decides)."""
    node = load_schema("job")
    for key in where:
        node = node["properties"][key]
    fast, full = string_check(node), fastjsonschema.compile(node)
    for value in VALUES:
        if fast(value):
            assert passes(full, value), value
    assert fast("a1.b_c-d" if where == ("id",) else "x.mp4")


def test_a_non_string_schema_keeps_the_compiled_check() -> None:
    check = string_check({"type": "integer", "maximum": 3})
    assert check(2) and not check(4) and not check("2")


@pytest.mark.parametrize(
    ("job", "ok"),
    [
        ({"id": "j1", "image": "i1", "prompt": "p1"}, True),
        ({"id": "j1", "image": "i1", "template": "t"}, True),
        ({"id": "j1", "image": "i1", "prompt": "p1", "template": "t"}, False),
        ({"id": "j1", "image": "i1"}, False),
        ({"id": "j1", "image": "i1", "template": ""}, False),
        ({"id": "-j", "image": "i1", "template": "t"}, False),
        (["id", "image", "prompt"], False),
        ("j1", False),
    ],
)
def test_the_jobs_item_check_reads_one_of_as_the_schema_does(job: Any, ok: bool) -> None:
    """Exactly one of prompt and template, as the schema's `oneOf` says, without it."""
    schema = load_schema("manifest")
    item = schema["properties"]["jobs"]["items"]
    full = fastjsonschema.compile({**item, "$id": schema["$id"], "$defs": schema["$defs"]})
    assert _job_item_check()(job) is ok
    assert passes(full, job) is ok
