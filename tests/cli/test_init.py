"""`i2v init`: a starter manifest that validates and plans as written (exact text)."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.cli.init_cmd import SCHEMA_URL

from ..conftest import IMAGES, REPO


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def folder(tmp_path: Path) -> Path:
    shots = tmp_path / "shots"
    shutil.copytree(IMAGES, shots)
    (shots / "sub").mkdir()
    shutil.copy(IMAGES / "garden.png", shots / "sub" / "Garden Shot.PNG")
    (shots / "notes.txt").write_text("not an image")
    return shots


def test_init_writes_a_manifest_that_validates_and_plans(tmp_path: Path) -> None:
    """ids come from file names (a clash gets -2), the emulator is the endpoint, and it plans."""
    shots = folder(tmp_path)
    code, out, err = invoke("init", str(shots))
    target = shots / "shots.yaml"
    assert (code, err) == (0, "")
    assert out == (
        f"Wrote {target}: 4 images, 1 example prompt, on the emulator.\nNext: i2v plan {target}\n"
    )
    text = target.read_text()
    assert text.startswith(f"# yaml-language-server: $schema={SCHEMA_URL}\n")
    assert '  - id: Garden-Shot\n    path: "sub/Garden Shot.PNG"\n' in text
    assert '  - id: garden\n    path: "garden.png"\n' in text
    assert "  endpoint: emulator" in text and "  # endpoint: akool\n" in text
    assert "  # image_base_url: " in text
    assert invoke("validate", str(target)) == (0, f"✓ {target}: 4 jobs\n", "")
    code, out, _ = invoke("plan", str(target))
    assert code == 0 and out.endswith("Plan: 4 to create. ≈ 80 credits\n")


def test_init_uncommented_real_api_settings_validate(tmp_path: Path) -> None:
    """Swapping in the commented real-API lines gives a manifest that validates."""
    shots = folder(tmp_path)
    invoke("init", str(shots), "--name", "spring")
    target = shots / "spring.yaml"
    text = target.read_text().replace("  endpoint: emulator", "  # (emulator)")
    text = text.replace("  # endpoint: akool", "  endpoint: akool")
    target.write_text(text.replace("  # image_base_url:", "  image_base_url:"))
    assert invoke("validate", str(target))[0] == 0


def test_init_refuses_to_overwrite_or_an_empty_folder(tmp_path: Path) -> None:
    """An existing manifest is kept (unless --force); a folder without images is an error."""
    shots = folder(tmp_path)
    assert invoke("init", str(shots))[0] == 0
    code, _, err = invoke("init", str(shots))
    assert code == 2
    assert err == (
        f"error: {shots / 'shots.yaml'} already exists\n"
        "  hint: pick another --name, or --force to overwrite it\n"
    )
    assert invoke("init", str(shots), "--force")[0] == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = invoke("init", str(empty))
    assert code == 2
    assert err == (
        f"error: no images (.png, .jpg, .jpeg, .webp) in {empty}\n"
        "  hint: run it in (or name) the folder that holds your images\n"
    )


def test_schema_modeline_names_a_file_in_the_repository() -> None:
    """The modeline's URL is the repository's schemas/manifest.schema.json, which exists."""
    assert SCHEMA_URL.endswith("/main/schemas/manifest.schema.json")
    assert (REPO / "schemas" / "manifest.schema.json").is_file()


def test_init_folds_accents_and_ids_that_differ_only_in_case(tmp_path: Path) -> None:
    """`Été photos/été.png` gives ids `ete`; `garden.png` + `Garden.PNG` get distinct ids whose
    outputs do not clash, so the written manifest plans; the next step is quoted for a shell."""
    shots = tmp_path / "Été photos"
    shots.mkdir()
    shutil.copy(IMAGES / "garden.png", shots / "garden.png")
    shutil.copy(IMAGES / "garden.png", shots / "Garden.PNG")
    shutil.copy(IMAGES / "tower.png", shots / "été.png")
    code, out, err = invoke("init", str(shots))
    target = shots / "Ete-photos.yaml"
    assert (code, err) == (0, ""), err
    assert out.endswith(f"Next: i2v plan '{target}'\n")
    text = target.read_text()
    assert "  - id: ete\n" in text
    assert "  - id: Garden\n" in text and "  - id: garden-2\n" in text
    code, out, err = invoke("plan", str(target))
    assert code == 0, err
