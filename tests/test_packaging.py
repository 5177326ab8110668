"""Packaging: a non-editable install ships the schemas; the public API and layers are pinned."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import i2v_pipeline

from .conftest import REPO


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
        "i2v_pipeline/schemas/manifest.schema.json",
        "i2v_pipeline/schemas/job.schema.json",
        "i2v_pipeline/schemas/lock.schema.json",
        "i2v_pipeline/data/models.json",
        "i2v_pipeline/py.typed",
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
        "import i2v_pipeline, i2v_pipeline.schemas as s, i2v_pipeline.catalog as c;"
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


# Imports go one way (design §6): errors, model <- core <- edge <- executor <- cli.
LAYERS = {
    "errors": 0,
    "model": 0,
    "manifest": 1,
    "templating": 1,
    "sandbox": 1,
    "expand": 1,
    "images": 1,
    "prompts": 1,
    "schemas": 1,
    "catalog": 1,
    "fingerprint": 1,
    "lock": 1,
    "journal": 1,
    "runlock": 1,
    "perf": 1,
    "plan": 1,
    "campaign": 1,
    "report": 1,
    "webhook_crypto": 1,
    "limits": 2,
    "providers": 2,
    "download": 2,
    "media": 2,
    "retry": 2,
    "executor": 3,
    "delivery": 2,
    "runner": 3,
    "cli": 4,
}
FORBIDDEN_IN_CORE = {"aiohttp", "anyio", "click", "rich"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = path.relative_to(REPO / "i2v_pipeline").parts
                depth = len(parts) - node.level
                base = list(parts[:depth])
                found.add(".".join([*base, *mod.split(".")]) if mod else ".".join(base))
                for alias in node.names:
                    found.add(".".join([*base, *(mod.split(".") if mod else []), alias.name]))
            else:
                found.add(mod)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_imports_go_one_way() -> None:
    """No module imports from a layer above it; core never imports aiohttp/anyio/click/rich;
    the runner never imports the emulator except in the CLI; the emulator never imports the
    runner's edge or executor."""
    pkg = REPO / "i2v_pipeline"
    problems = []
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg).parts
        top = rel[0].removesuffix(".py")
        if top in ("__init__", "__main__"):
            continue
        imports = _imports(path)
        tops = {i.split(".")[0] for i in imports if i}
        if top == "emulator":
            bad = {t for t in tops if LAYERS.get(t, 0) >= 2}
        else:
            level = LAYERS[top]
            bad = {t for t in tops if t in LAYERS and LAYERS[t] > level}
            if level <= 1:
                bad |= tops & FORBIDDEN_IN_CORE
            if top != "cli" and "emulator" in tops:
                bad.add("emulator")
        if bad:
            problems.append(f"{'/'.join(rel)} imports {sorted(bad)}")
    assert not problems, problems
