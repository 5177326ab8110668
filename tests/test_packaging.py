"""Packaging: a non-editable install ships the schemas; the public API and layers are pinned."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import i2v_pipeline

from .conftest import REPO

DOC_LINK = re.compile(r"docs/[A-Za-z0-9_-]+\.md")


def cited_docs() -> set[str]:
    """Every `docs/X.md` the package cites (help texts, error hints, schemas)."""
    found: set[str] = set()
    for path in [*(REPO / "i2v_pipeline").rglob("*.py"), *(REPO / "schemas").glob("*.json")]:
        found.update(DOC_LINK.findall(path.read_text(encoding="utf-8")))
    return found


def test_cited_docs_exist_and_ship_in_the_wheel() -> None:
    """Each doc the package cites is a file in the repo, and pyproject ships docs/ in the wheel
    where the slow wheel test looks for it."""
    assert {"docs/manifest.md", "docs/emulator.md"} <= cited_docs()
    for doc in cited_docs():
        assert (REPO / doc).is_file(), doc
    with open(REPO / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["docs"] == "i2v_pipeline/data/docs"


@pytest.mark.slow
def test_wheel_ships_schemas_and_finds_them(tmp_path: Path) -> None:
    """`pip install .` (non-editable) finds the schemas and the bundled model list."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "i2v_pipeline/data/schemas/manifest.schema.json",
        "i2v_pipeline/data/schemas/job.schema.json",
        "i2v_pipeline/data/schemas/lock.schema.json",
        "i2v_pipeline/data/models.json",
        "i2v_pipeline/py.typed",
        *(f"i2v_pipeline/data/{doc}" for doc in cited_docs()),
    } <= set(names)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import i2v_pipeline, i2v_pipeline.spec.validation as s, i2v_pipeline.spec.catalog as c;"
        f"assert str(s.schema_dir()).startswith({str(target)!r}), s.schema_dir();"
        "print(s.load_schema('lock')['title'], len(c.Catalog.bundled().models))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["i2v", "lockfile", "4"]


def test_public_api_is_pinned() -> None:
    """The public API is __all__, and it only changes on purpose."""
    assert sorted(i2v_pipeline.__all__) == [
        "Action",
        "Campaign",
        "I2VError",
        "JobSpec",
        "LockEntry",
        "PlanItem",
        "__version__",
        "compile_manifest",
        "load_campaign",
        "make_plan",
    ]
