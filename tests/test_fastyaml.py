"""The fast reader of a long `jobs:` list gives the YAML loader's values and marks, or declines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.spec import fastyaml
from i2v_pipeline.spec.manifest import loads, parse_yaml

HEAD = "version: 1\nname: big\nvars: {brand: Acme}\nimages:\n  - glob: 'img/*.png'\n"
VALUES = [
    '"Take 1: a # b, {c} [d]"',
    "'single: quoted'",
    "plain words [and] {braces}, commas",
    "1080p",
    "5",
    "05",
    "0x1F",
    "1_000",
    "1.5",
    "yes",
    "Off",
    "null",
    "~",
    "2026-11-25",
    "{resolution: 720p, duration: 10}",
    "{a: 1, a: 2}",
    "{}",
    "[t1, t2]",
    "[]",
    "[x,y]",
    '"tab\tinside"',
    '"esc\\"aped"',
    "trailing ",
    "a: b",
    "*alias",
    "&anchor x",
    "!!str 5",
    "|",
]
KEYS = ["id", "image", "template", "fields", "tags", "id"]


def _doc(jobs: list[list[tuple[str, str]]], indent: str, tail: str) -> str:
    lines = []
    for job in jobs:
        for i, (key, value) in enumerate(job):
            lead = f"{indent}- " if i == 0 else f"{indent}  "
            lines.append(f"{lead}{key}: {value}")
    return HEAD + "jobs:\n" + "\n".join(lines) + "\n" + tail


jobs_st = st.lists(
    st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)), min_size=1, max_size=4),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(jobs_st, st.sampled_from(["", "  "]), st.sampled_from(["", "output: {dir: out}\n", "\n"]))
def test_fast_reading_equals_the_loader(
    jobs: list[list[tuple[str, str]]], indent: str, tail: str
) -> None:
    """Whenever the fast reader answers, it answers as the YAML loader does."""
    text = _doc(jobs, indent, tail)
    fast = fastyaml.parse_fast(text, "m.yaml", parse_yaml, threshold=0)
    if fast is not None:
        assert fast == parse_yaml(text, "m.yaml")


def test_generated_jobs_take_the_fast_path() -> None:
    """A generated list of one-line jobs is read without the loader, values and marks alike."""
    rest = [("fields", "{resolution: 1080p, duration: 5}"), ("tags", "[a, b]")]
    jobs = [
        [("id", f"j{i}"), ("image", "i1"), ("template", f'"Shot {i}: {{{{ brand }}}}"'), *rest]
        for i in range(3)
    ]
    text = _doc(jobs, "  ", "output: {dir: out}\n")
    fast = fastyaml.parse_fast(text, "m.yaml", parse_yaml, threshold=0)
    assert fast is not None
    assert fast == parse_yaml(text, "m.yaml")
    assert fast[0]["jobs"][2]["fields"] == {"resolution": "1080p", "duration": 5}


@pytest.mark.parametrize(
    "text",
    [
        HEAD + 'description: "a\njobs:\n  - id: x\n"\n',  # `jobs:` inside a quoted scalar
        "{version: 1,\njobs:\n  - id: x\n}\n",  # a flow top level
        HEAD + "jobs:\n  - id: x\n    # a comment\n    image: i\n",
        HEAD + "jobs:\n  - id: x\n    id: y\n",  # a duplicate key: the loader's message
        HEAD + "jobs:\n  - id: x\n    template: >\n      folded\n",
    ],
)
def test_anything_else_declines(text: str) -> None:
    """Quoted or flow context, comments, duplicate keys, block scalars: the loader reads it."""
    assert fastyaml.parse_fast(text, "m.yaml", parse_yaml, threshold=0) is None


def test_small_manifests_keep_the_loader() -> None:
    """Below the threshold nothing changes: the loader reads every small manifest."""
    text = _doc([[("id", "j")]], "", "")
    assert fastyaml.parse_fast(text, "m.yaml", parse_yaml) is None


def test_errors_in_a_long_list_name_the_line(tmp_path: Path) -> None:
    """A schema error in a fast-read job points at its line, as the loader's marks do."""
    jobs = [[("id", f"j{i}"), ("image", "i1"), ("template", '"t"')] for i in range(40_000)]
    jobs[30_000].append(("durationn", "5"))
    text = _doc(jobs, "  ", "")
    assert len(text) > fastyaml.THRESHOLD
    with pytest.raises(ManifestError) as err:
        loads(text, tmp_path / "m.yaml")
    line = text.split("\n").index("    durationn: 5") + 1
    assert err.value.where == f"{tmp_path / 'm.yaml'}:{line}:16"  # the value, as the loader marks
    assert "unknown key `durationn`" in err.value.message
