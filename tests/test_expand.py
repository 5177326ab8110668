"""Expansion: matrix, exclude, include, explicit jobs, ids, output paths, sandbox."""

from __future__ import annotations

import pytest

from i2v_pipeline.errors import CatalogError, I2VError, ManifestError, TemplateError
from i2v_pipeline.spec.campaign import load_campaign

from .conftest import MINIMAL, WriteManifest

MATRIX = """\
version: 1
name: t
vars: {brand: Acme}
images:
  - glob: "images/*.png"
    tags: [all]
  - id: remote
    url: https://cdn.example.com/a.png
    sha256: "sha256:%s"
    vars: {brand: Remote}
prompts:
  - id: dolly
    template: "Dolly on {{ image.id }} for {{ brand }}, {{ mood }}"
  - id: pan
    template: "Pan {{ mood }}"
    fields: {duration: 10}
matrix:
  resolution: [720p, 1080p]
  mood: [calm]
exclude:
  - {image: "t*", prompt: pan}
include:
  - {image: garden, prompt: dolly, resolution: 4k, mood: bold}
jobs:
  - id: special
    image: sunrise
    template: "Special {{ brand }}"
    fields: {variants: 2}
output:
  dir: renders
  path: "{{ image.id }}/{{ id }}.mp4"
""" % ("ab" * 32)


def test_matrix_expansion_ids_and_fields(write_manifest: WriteManifest) -> None:
    """images x prompts x matrix - exclude + include + jobs, with stable derived ids."""
    c = load_campaign(write_manifest(MATRIX))
    ids = [s.id for s in c.specs]
    assert ids == [
        "garden.dolly.720p",
        "garden.dolly.1080p",
        "garden.pan.720p",
        "garden.pan.1080p",
        "sunrise.dolly.720p",
        "sunrise.dolly.1080p",
        "sunrise.pan.720p",
        "sunrise.pan.1080p",
        "tower.dolly.720p",
        "tower.dolly.1080p",
        "remote.dolly.720p",
        "remote.dolly.1080p",
        "remote.pan.720p",
        "remote.pan.1080p",
        "garden.dolly.4k.bold",
        "special",
    ]
    by_id = {s.id: s for s in c.specs}
    assert by_id["garden.dolly.720p"].request["prompt"] == "Dolly on garden for Acme, calm"
    assert by_id["remote.dolly.720p"].request["prompt"] == "Dolly on remote for Remote, calm"
    assert by_id["garden.pan.1080p"].request["video_length"] == 10
    assert by_id["garden.dolly.4k.bold"].request["resolution"] == "4k"
    assert by_id["special"].variants == 2
    assert by_id["special"].output_paths() == ["sunrise/special-v1.mp4", "sunrise/special-v2.mp4"]
    assert by_id["garden.dolly.720p"].tags == ("all",)
    assert c.output_dir == c.manifest.base_dir / "renders"
    assert by_id["remote.pan.720p"].image.identity() == {"sha256": "ab" * 32}


def test_expansion_is_deterministic(write_manifest: WriteManifest) -> None:
    """Two loads give identical specs and fingerprints."""
    path = write_manifest(MATRIX)
    a, b = load_campaign(path), load_campaign(path)
    assert [s.to_json() for s in a.specs] == [s.to_json() for s in b.specs]
    assert len({s.fingerprint for s in a.specs}) == len(a.specs)


def test_kling_drops_resolution(write_manifest: WriteManifest) -> None:
    """Models without a resolution list get no resolution field (the default is not sent)."""
    text = MINIMAL + "defaults: {model: kwaivgi/kling-v3.0-std/image-to-video, duration: 7}\n"
    (spec,) = load_campaign(write_manifest(text)).specs
    assert "resolution" not in spec.request
    assert spec.request["video_length"] == 7


def test_audio_and_last_frame_map_to_api_fields(write_manifest: WriteManifest) -> None:
    """Friendly field names become AKOOL's: audio -> audio_type, last_frame -> an image ref."""
    text = MINIMAL + (
        "defaults: {model: seedance-1-0-lite-i2v-250428, audio: custom,"
        " audio_url: 'https://a.example/x.mp3', last_frame: images/tower.png, variants: 3}\n"
    )
    (spec,) = load_campaign(write_manifest(text)).specs
    assert spec.request["audio_type"] == 2
    assert spec.request["count"] == 3
    assert spec.last_frame is not None and spec.last_frame.sha256


BAD = [
    ("prompts:\n  - {id: a, template: 'x {{ nope }}'}", TemplateError, "'nope' is undefined"),
    (
        "prompts:\n  - {id: a, template: '{{ x.__class__ }}'}\nvars: {x: 1}",
        TemplateError,
        "sandbox",
    ),
    ("prompts:\n  - {id: a, template: \"{{ ''.__class__.__mro__ }}\"}", TemplateError, "sandbox"),
    ("prompts:\n  - {id: a, template: \"{{ 'x' * 10**9 }}\"}", TemplateError, "sandbox"),
    ("prompts:\n  - {id: a, template: '{% for %}'}", TemplateError, "syntax error"),
    ("prompts:\n  - {id: a, template: '{{ \"\" }}'}", TemplateError, "renders empty"),
    (
        "prompts:\n  - {id: a, template: x}\n  - {id: a, template: y}",
        ManifestError,
        "duplicate prompt",
    ),
    (
        "prompts:\n  - {id: a, template: x}\noutput: {path: '/etc/{{ id }}.mp4'}",
        ManifestError,
        "absolute",
    ),
    (
        "prompts:\n  - {id: a, template: x}\noutput: {path: '../{{ id }}.mp4'}",
        ManifestError,
        "`..`",
    ),
    (
        "prompts:\n  - {id: a, template: x}\n  - {id: b, template: y}\noutput: {path: 'same.mp4'}",
        ManifestError,
        "both write",
    ),
    ("prompts:\n  - {id: a, template: x}\ndefaults: {model: Nope}", CatalogError, "unknown model"),
    (
        "prompts:\n  - {id: a, template: x}\ndefaults: {resolution: 8k}",
        CatalogError,
        "offers resolutions",
    ),
    (
        "prompts:\n  - {id: a, template: x}\ndefaults: {duration: 7}",
        CatalogError,
        "offers durations",
    ),
    (
        "prompts:\n  - {id: a, template: x}\ndefaults: {last_frame: images/tower.png}",
        CatalogError,
        "does not support last_frame",
    ),
    ("prompts:\n  - {id: a, template: x}\ndefaults: {generate_audio: true}", CatalogError, "audio"),
    ("prompts:\n  - {id: a, template: x}\ndefaults: {audio: custom}", CatalogError, "audio_url"),
    (
        "prompts:\n  - {id: a, template: x}\n"
        "defaults: {model: kwaivgi/kling-v3.0-std/image-to-video,"
        " variants: 5}",
        CatalogError,
        "at most 4",
    ),
    ("prompts:\n  - {id: a, template: x}\nexclude: [{colour: red}]", ManifestError, "exclude key"),
    (
        "prompts:\n  - {id: a, template: x}\njobs: [{id: garden.a, image: garden, prompt: a}]",
        ManifestError,
        "duplicate job id",
    ),
    (
        "prompts:\n  - {id: a, template: x}\njobs: [{id: j, image: nope, prompt: a}]",
        ManifestError,
        "no image with id",
    ),
]


@pytest.mark.parametrize(
    ("tail", "error", "message"),
    BAD,
    ids=[
        "undefined",
        "attr-escape",
        "mro-escape",
        "memory-bomb",
        "jinja-syntax",
        "empty",
        "dup-prompt",
        "abs-output",
        "traversal",
        "same-output",
        "unknown-model",
        "bad-resolution",
        "bad-duration",
        "last-frame",
        "generate-audio",
        "audio-url",
        "max-count",
        "exclude-key",
        "dup-job",
        "job-image",
    ],
)
def test_bad_expansions_are_clean_errors(
    write_manifest: WriteManifest, tail: str, error: type[I2VError], message: str
) -> None:
    """Each bad template or combination is a clean exit-2 error with a location."""
    head = "version: 1\nname: t\nimages:\n  - path: images/garden.png\n"
    path = write_manifest(head + tail + "\n")
    with pytest.raises(error) as info:
        load_campaign(path)
    assert message in info.value.render()
    assert str(path) in info.value.render()
    assert info.value.exit_code == 2


def test_glob_matching_nothing(write_manifest: WriteManifest) -> None:
    """A glob that matches nothing says which glob and where."""
    text = MINIMAL.replace("path: images/garden.png", "glob: 'pics/*.jpg'")
    with pytest.raises(ManifestError, match=r"glob `pics/\*.jpg` matches no files"):
        load_campaign(write_manifest(text))


def test_free_text_is_checked_on_every_job(write_manifest: WriteManifest) -> None:
    """A job like others in all but an over-long prompt is still refused (the schema check
    caches by shape, never by skipping the text)."""
    text = MINIMAL.replace(
        '    template: "A calm scene"',
        '    template: "{{ \'x\' * n }}"\n  - id: b\n    template: "short"',
    ).replace("images:", "vars: {n: 6000}\nimages:")
    text = text.replace("prompts:\n", "prompts:\n  - id: first\n    template: ok\n")
    with pytest.raises(CatalogError, match="is too long"):
        load_campaign(write_manifest(text))


def test_two_jobs_for_one_video_are_refused(write_manifest: WriteManifest) -> None:
    """Two jobs with the same fingerprint would share one lock record: an error with a hint."""
    text = MINIMAL + "jobs:\n  - {id: again, image: garden, template: 'A calm scene'}\n"
    with pytest.raises(ManifestError, match="ask for the same video") as info:
        load_campaign(write_manifest(text))
    assert "variants" in info.value.render()


def test_audio_output_clashing_with_a_video_says_which_is_the_audio(
    write_manifest: WriteManifest,
) -> None:
    """A clash between an update_audio.output and another job's output.path names both
    settings and points at the update_audio block, not output.path."""
    text = (
        "version: 1\nname: t\nimages:\n  - path: images/garden.png\nprompts:\n"
        "  - id: a\n    template: x\n"
        "    fields:\n      update_audio: {type: ai, output: '{{ image.id }}/b.mp4'}\n"
        "  - id: b\n    template: y\n"
        "output: {path: '{{ image.id }}/{{ prompt.id }}.mp4'}\n"
    )
    path = write_manifest(text)
    with pytest.raises(ManifestError) as info:
        load_campaign(path)
    assert info.value.message == (
        "job garden.a's update_audio.output and job garden.b's output.path both write garden/b.mp4"
    )
    assert info.value.where == f"{path}:9:7"  # the update_audio block
    assert "update_audio.output" in (info.value.hint or "")
