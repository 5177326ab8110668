"""Shared fixtures: a scratch folder with the repo's sample images and a manifest writer."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "manifests" / "images"

MINIMAL = """\
version: 1
name: t
images:
  - path: images/garden.png
prompts:
  - id: a
    template: "A calm scene"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(IMAGES, tmp_path / "images")
    return tmp_path


WriteManifest = Callable[..., Path]


@pytest.fixture
def write_manifest(workdir: Path) -> WriteManifest:
    def write(text: str = MINIMAL, name: str = "m.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
