"""The one encoder keeps the exact spelling each file format had before it was shared."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from i2v_pipeline.canonical import canonical_json

values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(values, st.booleans())
def test_variants_match_the_standard_library(value: object, sort_keys: bool) -> None:
    """Journal (compact, writer's order) and lock (spaced) spellings equal json.dumps's."""
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    spaced = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, sort_keys=sort_keys)
    if not sort_keys:  # the journal: byte for byte but a float's spelling, which reads back
        journal = canonical_json(value, sort_keys=False)
        if not _has_float(value):
            assert journal == compact.encode()
        elif "Infinity" not in compact:  # not JSON at all: orjson writes null
            assert json.loads(journal) == json.loads(compact)
    assert canonical_json(value, sort_keys=sort_keys, spaced=True) == spaced.encode()


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    return isinstance(value, list) and any(_has_float(v) for v in value)


def test_big_integers_fall_back_to_the_standard_library() -> None:
    """An integer beyond 64 bits, which orjson refuses, still encodes (sorted, compact)."""
    assert canonical_json({"b": 2**70, "a": "é"}) == '{"a":"é","b":1180591620717411303424}'.encode()
