"""`i2v models`: the catalog listing, and its --manifest option checked even without --refresh."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from i2v_pipeline.cli import cli

from ..conftest import WriteManifest


def test_models_with_a_missing_manifest_is_an_error(tmp_path: Path) -> None:
    """`models --manifest` naming no file exits 2 saying so (it used to list the snapshot)."""
    missing = tmp_path / "nonexistent.yaml"
    result = CliRunner().invoke(cli, ["models", "--manifest", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: manifest not found" in result.stderr
    assert result.stdout == ""


def test_models_with_a_manifest_lists_the_catalog(write_manifest: WriteManifest) -> None:
    """A valid --manifest without --refresh lists the catalog in use."""
    result = CliRunner().invoke(cli, ["models", "--manifest", str(write_manifest())])
    assert result.exit_code == 0, result.stderr
    assert "AkoolImage2VideoFastV1" in result.stdout
