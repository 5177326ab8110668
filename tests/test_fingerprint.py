"""Fingerprints: what changes the video changes the fingerprint; nothing else does."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from i2v_pipeline.canonical import canonical_json
from i2v_pipeline.model import ImageRef, JobSpec
from i2v_pipeline.spec.fingerprint import fingerprint, fingerprint_of, hash_file

IMAGE = ImageRef("path", "/x/a.png", "a.png", "c" * 64)
keys = st.sampled_from(["prompt", "model_name", "resolution", "video_length", "count", "x"])
values = st.one_of(st.text(max_size=20), st.integers(), st.booleans())
requests = st.dictionaries(keys, values, min_size=1)


def spec(request: dict[str, object], **kw: object) -> JobSpec:
    return JobSpec(id="j", image=IMAGE, request=request, output="a.mp4", **kw)  # type: ignore[arg-type]


@given(requests)
def test_key_order_does_not_matter(request: dict[str, object]) -> None:
    """Reordering request keys never changes the fingerprint."""
    reordered = dict(reversed(list(request.items())))
    assert fingerprint(spec(request)) == fingerprint(spec(reordered))


@given(requests, st.text(min_size=1, max_size=30), st.lists(st.text(max_size=5), max_size=3))
def test_output_id_and_tags_do_not_matter(
    request: dict[str, object], out: str, tags: list[str]
) -> None:
    """Output path, job id and tags are outside the fingerprint."""
    base = spec(request)
    moved = dataclasses.replace(base, id="other", output=out + ".mp4", tags=tuple(tags))
    assert fingerprint(base) == fingerprint(moved)


@given(requests, keys, values)
def test_request_fields_matter(request: dict[str, object], key: str, value: object) -> None:
    """Changing any request field changes the fingerprint."""
    changed = {**request, key: value}
    if canonical_json(changed) != canonical_json(request):
        assert fingerprint(spec(request)) != fingerprint(spec(changed))


def test_image_content_not_path_matters() -> None:
    """Local images are keyed by content; URL images by URL unless pinned."""
    moved = ImageRef("path", "/elsewhere/b.png", "b.png", "c" * 64)
    assert fingerprint(spec({"prompt": "p"})) == fingerprint(
        dataclasses.replace(spec({"prompt": "p"}), image=moved)
    )
    other = ImageRef("path", "/x/a.png", "a.png", "d" * 64)
    assert fingerprint(spec({"prompt": "p"})) != fingerprint(
        dataclasses.replace(spec({"prompt": "p"}), image=other)
    )
    u1 = ImageRef("url", "https://a/1.png", "https://a/1.png")
    u2 = ImageRef("url", "https://a/2.png", "https://a/2.png")
    assert u1.identity() != u2.identity()
    pinned = ImageRef("url", "https://a/2.png", "https://a/2.png", "c" * 64)
    assert pinned.identity() == IMAGE.identity()


def test_hash_file_streams(tmp_path: Path) -> None:
    """hash_file matches hashlib over the whole content, across chunk boundaries."""
    import hashlib

    data = bytes(range(256)) * 9000
    p = tmp_path / "f"
    p.write_bytes(data)
    assert hash_file(p) == hashlib.sha256(data).hexdigest()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_is_the_standard_librarys(value: object) -> None:
    """The fast encoder writes exactly what json.dumps(sort_keys, compact, UTF-8) writes, so
    fingerprints never depend on which library computed them."""
    import json

    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode()


def test_fingerprint_of_a_fixed_spec_is_pinned() -> None:
    """The hash form is versioned: a fixed spec keeps this exact fingerprint (locks stay fresh)."""
    fixed = JobSpec(
        id="j",
        image=IMAGE,
        request={
            "prompt": "Dolly in",
            "model_name": "AkoolImage2VideoFastV1",
            "resolution": "720p",
            "video_length": 5,
            "count": 1,
        },
        output="a.mp4",
        last_frame=ImageRef("url", "https://x/b.png", "https://x/b.png"),
    )
    assert fingerprint(fixed) == "ae756f6c734d8caff6e3e72324973f5b5606e25197f9013a16663f46f9c981a5"


def _reference(image: ImageRef, last_frame: ImageRef | None, request: dict[str, object]) -> str:
    """The fingerprint as first defined: sha256 of the standard library's canonical JSON."""
    payload = {
        "provider": "akool",
        "endpoint": "image2video.batch",
        "image": image.identity(),
        "last_frame": last_frame.identity() if last_frame else None,
        "request": request,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


big_values = st.one_of(values, st.integers(min_value=2**64, max_value=2**80), st.text())


@given(st.dictionaries(keys, big_values, min_size=1), st.booleans())
def test_fingerprint_of_matches_the_payload_definition(
    request: dict[str, object], with_last_frame: bool
) -> None:
    """Spelling the payload piece by piece gives the bytes of the whole payload's JSON."""
    lf = ImageRef("url", "https://a/é.png", "https://a/é.png") if with_last_frame else None
    assert fingerprint_of(IMAGE, lf, request) == _reference(IMAGE, lf, request)
