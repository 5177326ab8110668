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
    if not sort_keys:
        assert canonical_json(value, sort_keys=False) == compact.encode()
    assert canonical_json(value, sort_keys=sort_keys, spaced=True) == spaced.encode()


def test_big_integers_fall_back_to_the_standard_library() -> None:
    """An integer beyond 64 bits, which orjson refuses, still encodes (sorted, compact)."""
    assert canonical_json({"b": 2**70, "a": "é"}) == '{"a":"é","b":1180591620717411303424}'.encode()
