"""The model catalog is cached per endpoint: a refresh against one never changes another's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.spec.catalog import Catalog, cache_path

from ..conftest import MINIMAL, ThreadedEmulator, WriteManifest

ONE_MODEL = [{"value": "OnlyThisOne", "resolutionList": [{"value": "720p"}], "durationList": [5]}]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cache_file_per_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each endpoint has its own file, named after its host."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    base = tmp_path / "i2v" / "models"
    assert cache_path("https://openapi.akool.com") == base / "openapi.akool.com.json"
    assert cache_path("http://127.0.0.1:8787/") == base / "127.0.0.1-8787.json"


def test_refresh_elsewhere_never_changes_emulator_validation(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A cached list for another endpoint rules that endpoint's manifests, not the emulator's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    Catalog.save_cache("https://api.example.com", ONE_MODEL)
    emulator = write_manifest(MINIMAL, name="e.yaml")
    assert invoke("validate", str(emulator))[0] == 0  # default model: in the snapshot
    remote = write_manifest(
        MINIMAL + 'provider: {endpoint: "https://api.example.com", image_base_url: "https://x/"}\n',
        name="r.yaml",
    )
    code, _, err = invoke("validate", str(remote))
    assert code == 2 and "unknown model `AkoolImage2VideoFastV1`" in err


def test_models_refresh_caches_that_endpoint_and_shows_its_age(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`models --refresh --manifest M` caches M's endpoint's list; `models` names it and its age."""
    url = emulator.base_url
    path = str(
        write_manifest(MINIMAL + f'provider: {{endpoint: "{url}", image_base_url: "file://"}}\n')
    )
    cached = cache_path(url)
    code, out, err = invoke("models", "--refresh", "--manifest", path)
    assert code == 0
    assert err == f"cached 4 models from {url} in {cached}\n"
    assert out.startswith(f"# catalog for {url}: cache {cached}, fetched from {url} just now\n")
    assert json.loads(cached.read_text())["endpoint"] == url
    old = cached.stat().st_mtime - 3 * 3600
    os.utime(cached, (old, old))
    _, out, _ = invoke("models", "--manifest", path)
    assert out.startswith(f"# catalog for {url}: cache {cached}, fetched from {url} 3 hours ago\n")
    _, out, _ = invoke("models")
    assert out.startswith("# catalog for emulator: bundled snapshot (")
