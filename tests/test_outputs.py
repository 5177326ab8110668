"""What outputs may never name (input images, YAML files) and how many jobs a manifest may make:
refused by `validate`/`plan` from the specs alone, before anything runs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.outputs import protected_name

from .conftest import MINIMAL, REPO, WriteManifest

HEAD = "version: 1\nname: t\nimages:\n  - path: images/garden.png\n"


@pytest.mark.parametrize(
    ("tail", "message", "line"),
    [
        ("output: {dir: '.', path: images/garden.png}", "the input image images/garden.png", 7),
        ("output: {dir: images, path: 'Garden.PNG'}", "the input image images/garden.png", 7),
        ("output: {dir: '.', path: './images//garden.png'}", "the input image", 7),
        (
            "defaults: {model: seedance-1-0-lite-i2v-250428, last_frame: images/tower.png}\n"
            "output: {dir: '.', path: images/tower.png}",
            "the input image images/tower.png",
            8,
        ),
        ("output: {dir: '.', path: sym.yaml}", "would overwrite a YAML file", 7),
        ("output: {path: 'x/{{ id }}.YML'}", "would overwrite a YAML file", 7),
        ("output: {path: 'other.lock.yaml.journal'}", "would overwrite a lockfile's journal", 7),
        ("output: {path: 'other.lock.yaml.run'}", "would overwrite a run lock", 7),
    ],
    ids=["image", "image-casefold", "image-dotted", "last-frame", "yaml", "yml", "journal", "run"],
)
def test_outputs_may_not_name_inputs_or_yaml(
    write_manifest: WriteManifest, tail: str, message: str, line: int
) -> None:
    """An output path that is an input image or a YAML file is an exit-2 error at output.path."""
    path = write_manifest(HEAD + "prompts:\n  - {id: a, template: x}\n" + tail + "\n")
    with pytest.raises(ManifestError) as info:
        load_campaign(path)
    assert message in info.value.message
    assert info.value.where.startswith(f"{path}:{line}:")


def test_a_job_output_naming_an_image_points_at_the_job(write_manifest: WriteManifest) -> None:
    """An explicit job's own `output:` is the place named when it names an input image."""
    text = HEAD + "output: {dir: '.'}\njobs:\n  - {id: j, image: garden, template: x,\n"
    path = write_manifest(text + "     output: images/garden.png}\n")
    with pytest.raises(ManifestError, match="job j: its output would overwrite") as info:
        load_campaign(path)
    assert info.value.where == f"{path}:8:14"


def test_video_names_are_not_protected() -> None:
    """Ordinary names, and names merely containing `yaml`, are fine."""
    for name in ("a.mp4", "yaml.mp4", "x.yaml.mp4", "run", "a/b.journal", "yaml"):
        assert protected_name(name) is None, name


VALUES = ",".join(map(str, range(1000)))
MATRIX = f"matrix: {{a: [{VALUES}], b: [{VALUES}]}}\n"


def test_a_huge_matrix_is_refused_before_expanding(write_manifest: WriteManifest) -> None:
    """1,000 x 1,000 combinations: refused within a second, naming the matrix line and count."""
    path = write_manifest(MINIMAL + MATRIX)
    started = time.monotonic()
    with pytest.raises(ManifestError) as info:
        load_campaign(path)
    assert time.monotonic() - started < 1.0
    assert "expands to 1,000,000 jobs" in info.value.message
    assert "limits.max_jobs (200,000)" in info.value.message
    assert info.value.where == f"{path}:8:1"


def test_max_jobs_raises_the_cap_and_counts_includes_and_jobs(
    write_manifest: WriteManifest,
) -> None:
    """limits.max_jobs moves the cap; includes and explicit jobs count toward it exactly."""
    text = MINIMAL.replace("path: images/garden.png", "glob: 'images/*.png'\n    tags: [t]")
    text = text.replace("A calm scene", "A {{ mood }} scene")
    text += "matrix: {mood: [a, b]}\ninclude:\n  - {tag: t, mood: c}\n"
    text += "jobs:\n  - {id: j, image: garden, template: other}\n"
    # 3 images x 1 prompt x 2 + 3 included + 1 job = 10
    assert len(load_campaign(write_manifest(text + "limits: {max_jobs: 10}\n")).specs) == 10
    with pytest.raises(ManifestError, match="expands to 10 jobs"):
        load_campaign(write_manifest(text + "limits: {max_jobs: 9}\n"))


def test_validate_refuses_a_huge_matrix_quickly(write_manifest: WriteManifest) -> None:
    """`i2v validate` on the 1,000 x 1,000 matrix exits 2 with the count, not minutes later."""
    path = write_manifest(MINIMAL + MATRIX)
    done = subprocess.run(
        [sys.executable, "-m", "i2v_pipeline", "validate", str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "HOME": str(path.parent), "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "expands to 1,000,000 jobs" in done.stderr
