"""Paths stay inside the manifest's folder: output.dir, output paths, images, globs, last_frame."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.spec.campaign import load_campaign

HEAD = """\
version: 1
name: t
prompts:
  - {id: a, template: "A calm scene"}
"""


@pytest.fixture
def project(workdir: Path) -> Path:
    """A manifest folder `proj/` with its own images, and a `secret.png` beside it (outside)."""
    proj = workdir / "proj"
    shutil.copytree(workdir / "images", proj / "images")
    shutil.copy(workdir / "images" / "garden.png", workdir / "secret.png")
    return proj


def load(proj: Path, body: str, name: str = "m.yaml") -> object:
    path = proj / name
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return load_campaign(path)


def refused(proj: Path, body: str, message: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load(proj, body)
    assert message in info.value.render()
    return info.value


@pytest.mark.parametrize("folder", ["../x", "/tmp/x", "out/../../x"])
def test_output_dir_outside_is_refused(project: Path, folder: str) -> None:
    """An absolute output.dir, or one with `..`, is refused at load."""
    error = refused(
        project,
        f"images: [{{path: images/garden.png}}]\noutput: {{dir: '{folder}'}}\n",
        "leaves the manifest's folder",
    )
    assert error.where is not None and error.where.endswith(":6:15")  # points at output.dir


@pytest.mark.parametrize(
    ("template", "what"),
    [
        ("m.lock.yaml", "the lockfile"),
        ("M.yaml", "the manifest"),
        ("./m.lock.yaml.journal", "the lock's journal"),
    ],
)
def test_output_path_naming_the_manifests_files_is_refused(
    project: Path, template: str, what: str
) -> None:
    """With output.dir `.`, an output path may not name the manifest, its lock or journal."""
    refused(
        project,
        f"images: [{{path: images/garden.png}}]\noutput: {{dir: ., path: '{template}'}}\n",
        f"would overwrite {what}",
    )


def test_yaml_names_are_refused_in_a_subfolder_too(project: Path) -> None:
    """`out/m.lock.yaml` could be another manifest's lock (or become one): no output is YAML."""
    refused(
        project,
        "images: [{path: images/garden.png}]\noutput: {dir: out, path: m.lock.yaml}\n",
        "output path 'm.lock.yaml' would overwrite a YAML file",
    )


def test_image_outside_is_refused_unless_allowed(project: Path, workdir: Path) -> None:
    """`../secret.png` is refused; `allow_outside: true` on that entry lets it in."""
    refused(project, "images: [{path: ../secret.png}]\n", "outside the manifest's folder")
    campaign = load(project, "images: [{path: ../secret.png, allow_outside: true}]\n")
    (spec,) = campaign.specs  # type: ignore[attr-defined]
    assert spec.image.value == str((workdir / "secret.png").resolve())


def test_glob_escaping_is_refused_unless_allowed(project: Path) -> None:
    """A glob with `..` or an absolute glob is refused; allow_outside lets it in."""
    refused(project, "images: [{glob: '../*.png'}]\n", "reaches outside")
    refused(project, "images: [{glob: '/etc/*'}]\n", "reaches outside")
    campaign = load(project, "images: [{glob: '../*.png', allow_outside: true}]\n")
    assert [s.id for s in campaign.specs] == ["secret.a"]  # type: ignore[attr-defined]


def test_symlink_out_of_the_folder_is_refused(project: Path, workdir: Path) -> None:
    """A symlinked folder inside pointing outside: the real path decides, for paths and globs."""
    (project / "linked").symlink_to(workdir, target_is_directory=True)
    refused(project, "images: [{path: linked/secret.png}]\n", "outside the manifest's folder")
    refused(project, "images: [{glob: 'linked/*.png'}]\n", "outside the manifest's folder")


def test_symlink_inside_the_folder_is_fine(project: Path) -> None:
    """A symlink that stays inside the manifest's folder is an ordinary path."""
    (project / "alias").symlink_to(project / "images", target_is_directory=True)
    campaign = load(project, "images: [{glob: 'alias/*.png'}]\n")
    assert len(campaign.specs) == 3  # type: ignore[attr-defined]


def test_last_frame_outside_is_refused(project: Path) -> None:
    """A local last_frame image must be inside the manifest's folder too."""
    refused(
        project,
        "images: [{path: images/garden.png}]\n"
        "defaults: {model: seedance-1-0-lite-i2v-250428, last_frame: ../secret.png}\n",
        "last_frame image ../secret.png is outside",
    )
