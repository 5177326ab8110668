"""What a newcomer meets first: validate refusals, the emulator banner, wording (exact text)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.cli.emulator_cmds import banner

from ..conftest import MINIMAL, WriteManifest


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_validate_refuses_local_images_for_a_remote_endpoint(
    write_manifest: WriteManifest,
) -> None:
    """Local images on a non-emulator endpoint without image_base_url fail at validate time."""
    path = write_manifest(MINIMAL + 'provider:\n  endpoint: "https://api.example.com"\n')
    code, out, err = invoke("validate", str(path))
    assert (code, out) == (2, "")
    assert err == (
        f"✗ {path}\n{path}:9:13: job garden.a uses the local image images/garden.png, which "
        "the endpoint https://api.example.com cannot read\n"
        "  hint: publish the images and set provider.image_base_url to their base URL, use "
        '`url:` images, or, for a local emulator, `image_base_url: "file://"`\n'
    )


def test_validate_passes_with_image_base_url(write_manifest: WriteManifest) -> None:
    """The same manifest with image_base_url validates; one job is `1 job`."""
    path = write_manifest(
        MINIMAL + 'provider:\n  endpoint: "https://api.example.com"\n'
        '  image_base_url: "https://cdn.example.com/in/"\n'
    )
    assert invoke("validate", str(path)) == (0, f"✓ {path}: 1 job\n", "")


def test_emulator_banner_is_a_complete_snippet(write_manifest: WriteManifest) -> None:
    """The serve banner's manifest snippet, pasted under a manifest, validates as is."""
    text = banner("http://127.0.0.1:8787", "emulator-key")
    assert text == (
        "AKOOL emulator on http://127.0.0.1:8787\n"
        "  api key: emulator-key  (x-api-key header)\n"
        "  in a manifest:\n"
        "    provider:\n"
        '      endpoint: "http://127.0.0.1:8787"\n'
        '      image_base_url: "file://"\n'
        "  then: AKOOL_API_KEY=emulator-key i2v run MANIFEST"
    )
    lines = text.splitlines()
    snippet = "\n".join(line[4:] for line in lines[lines.index("  in a manifest:") + 1 : -1])
    assert yaml.safe_load(snippet)["provider"]["image_base_url"] == "file://"
    path = write_manifest(MINIMAL + snippet + "\n")
    assert invoke("validate", str(path))[0] == 0
