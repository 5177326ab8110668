"""`i2v run` checks before buying: pre-flight problems and consent to spend stop the run before
its first request, with one exit-2 message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli, common
from i2v_pipeline.run import preflight

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import MANIFEST


def invoke(*args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=answer)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def refused(emulator: ThreadedEmulator, path: Path, *messages: str) -> str:
    code, err = invoke("run", str(path), "--yes")
    assert code == 2, err
    for message in messages:
        assert message in err
    assert "pre-flight found" in err and "Traceback" not in err
    assert emulator.requests() == 0
    return err


def test_output_folder_that_is_a_file(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """An output.dir that is a file is exit 2 before any request."""
    (workdir / "out").write_text("not a folder")
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    refused(emulator, path, "out is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_folder_not_writable(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A read-only output folder is exit 2 before any request."""
    (workdir / "out").mkdir()
    (workdir / "out").chmod(0o500)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    try:
        refused(emulator, path, "cannot write in")
    finally:
        (workdir / "out").chmod(0o700)


def test_symlinked_subfolder_pointing_out(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A folder inside the output folder that links outside the manifest's folder is refused,
    once, however many jobs write into it."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (workdir / "out").mkdir()
    (workdir / "out" / "garden").symlink_to(elsewhere, target_is_directory=True)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    err = refused(emulator, path, "out/garden is a symlink to", "outside the output folder")
    assert err.count("is a symlink") == 1
    assert not list(elsewhere.iterdir())


def test_output_folder_linked_outside(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """An output folder that is itself a symlink out of the manifest's folder is refused."""
    (workdir / "out").symlink_to(tmp_path_factory.mktemp("elsewhere"), target_is_directory=True)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    refused(emulator, path, "out is a symlink to", "outside the manifest's folder")


def test_file_link_inside_the_output_folder_is_refused(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A planned output that is a symlink to a file elsewhere in the project (the manifest) is
    refused: the output folder holds outputs only."""
    (workdir / "out" / "garden").mkdir(parents=True)
    (workdir / "out" / "garden" / "dolly.mp4").symlink_to(workdir / "m.yaml")
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    refused(emulator, path, "out/garden/dolly.mp4 is a symlink to", "outside the output folder")


def test_symlink_onto_the_own_lock(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """An output reaching the manifest's own lockfile through a symlinked folder is refused (by
    its name already, before pre-flight resolves the link)."""
    (workdir / "out").mkdir()
    (workdir / "out" / "meta").symlink_to(workdir, target_is_directory=True)
    text = MANIFEST.format(url=emulator.base_url) + (
        "jobs:\n  - {id: j, image: garden, template: 'Zoom', output: meta/m.lock.yaml}\n"
    )
    path = write_manifest(text)
    code, err = invoke("run", str(path), "--yes")
    assert code == 2 and "output path 'meta/m.lock.yaml' would overwrite a YAML file" in err
    assert emulator.requests() == 0


def test_output_recorded_by_another_manifest(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Two manifests in one folder writing the same file: the second run is refused, naming the
    other manifest's lock, before it buys anything."""
    text = MANIFEST.format(url=emulator.base_url)
    other = write_manifest(text, name="other.yaml")
    code, err = invoke("run", str(other), "--yes", "-q", "--select", "garden.dolly")
    assert code == 0, err
    before = emulator.requests()
    path = write_manifest(text.replace("Dolly in", "Push in"))
    code, err = invoke("run", str(path), "--yes")
    assert code == 2 and "out/garden/dolly.mp4 would overwrite a video recorded in" in err
    assert "other.lock.yaml (job garden.dolly)" in err
    assert emulator.requests() == before


def test_disk_space_and_every_problem_listed(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Too little disk for the planned videos is refused, in one message with the other
    problems."""
    monkeypatch.setattr(preflight, "disk_free", lambda _path: 1_000_000)
    (workdir / "out").mkdir()
    (workdir / "out" / "tower").write_text("a file where a folder goes")
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    refused(emulator, path, "found 2 problems", "tower is a file", "has 1 MB free")


def test_consent_needed_off_a_terminal(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """A real endpoint without a terminal, --yes or a covering budget: exit 2, nothing sent,
    and the endpoint's password is not printed."""
    url = emulator.base_url.replace("http://", "http://user:hunter2@")
    path = write_manifest(MANIFEST.format(url=url))
    code, err = invoke("run", str(path))
    assert code == 2 and "buy 6 videos for ~120 credits" in err and "--yes" in err
    assert "hunter2" not in err
    code, err = invoke("run", str(path), "--max-credits", "100")
    assert code == 2 and "max_credits 100 does not cover it" in err
    assert emulator.requests() == 0


def test_yes_or_a_covering_budget_buys(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """--yes buys; so does a limits.max_credits that covers the estimate."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    code, err = invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")
    assert code == 0 and emulator.creates() == 1, err
    path = write_manifest(text.replace("poll_interval: 0.1", "max_credits: 20, poll_interval: 0.1"))
    code, err = invoke("run", str(path), "-q", "--select", "garden.pan")
    assert code == 0 and emulator.creates() == 2, err


def test_terminal_asks_and_no_buys_nothing(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the run asks; anything but `yes` buys nothing, `yes` buys."""
    monkeypatch.setattr(common, "on_terminal", lambda: True)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, err = invoke("run", str(path), "--select", "garden.dolly", answer="no\n")
    assert code == 1 and "Type yes to buy 1 video for ~20 credits" in err
    assert "not confirmed: nothing was bought" in err and emulator.requests() == 0
    code, err = invoke("run", str(path), "-q", "--select", "garden.dolly", answer="yes\n")
    assert code == 0 and emulator.creates() == 1, err


def test_ctrl_c_or_end_of_input_at_the_question_buys_nothing(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C or Ctrl-D at `Type yes`: exit 130, nothing was bought, and it says so (click
    said `Aborted!` with exit 1, as if the run had failed)."""
    monkeypatch.setattr(common, "on_terminal", lambda: True)
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    code, err = invoke("run", str(path), "--select", "garden.dolly", answer="")  # end of input
    assert code == 130 and "Type yes to buy" in err and "Aborted" not in err, err
    assert "interrupted before anything was sent: nothing was bought" in err
    assert f"run it again: i2v run {path} --select garden.dolly" in err
    assert emulator.requests() == 0 and not path.with_suffix(".lock.yaml.run").exists()


def test_embedded_emulator_never_asks(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`endpoint: emulator` runs without --yes, on a terminal or not: no prompt is shown."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(common, "on_terminal", lambda: True)
    path = write_manifest()  # the embedded emulator is the default endpoint
    code, err = invoke("run", str(path), "-q")  # no input: a prompt would abort
    assert code == 0, err
    assert "Type yes" not in err


def test_an_unrecorded_file_at_an_output_path_is_refused(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A file the lock does not hold where a job would write is exit 2 before any create, and
    stays as it was."""
    (workdir / "out" / "garden").mkdir(parents=True)
    (workdir / "out" / "garden" / "pan.mp4").write_bytes(b"someone's edit")
    path = write_manifest(MANIFEST.format(url=emulator.base_url))
    refused(
        emulator,
        path,
        "job garden.pan: out/garden/pan.mp4 already exists and the lock does not record it",
    )
    assert (workdir / "out" / "garden" / "pan.mp4").read_bytes() == b"someone's edit"


def test_an_output_linked_to_an_input_image_is_refused(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """An output path reaching an input image (here through a symlinked folder, which the specs
    alone cannot see) is refused at pre-flight and the image is untouched."""
    (workdir / "out").mkdir()
    (workdir / "out" / "garden").symlink_to(workdir / "images", target_is_directory=True)
    text = MANIFEST.format(url=emulator.base_url).replace(
        '"{{ image.id }}/{{ prompt.id }}.mp4"', '"{{ image.id }}/{{ image.id }}.png"'
    )
    text = text.replace('  - id: pan\n    template: "Pan across {{ image.id }}"\n', "")
    image = (workdir / "images" / "garden.png").read_bytes()
    path = write_manifest(text)
    refused(emulator, path, "out/garden/garden.png would overwrite the input image")
    assert (workdir / "images" / "garden.png").read_bytes() == image


def test_a_changed_job_replaces_its_own_recorded_video(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """The file the lock records for a job is that job's to replace: a changed prompt re-creates
    it without a pre-flight problem."""
    text = MANIFEST.format(url=emulator.base_url)
    path = write_manifest(text)
    code, err = invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")
    assert code == 0, err
    assert (workdir / "out" / "garden" / "dolly.mp4").is_file()
    before = emulator.creates()
    write_manifest(text.replace("Dolly in", "Push in"))
    code, err = invoke("run", str(path), "--yes", "-q", "--select", "garden.dolly")
    assert code == 0, err
    assert emulator.creates() == before + 1
    assert "Push in" in (workdir / "m.lock.yaml").read_text()


def test_two_names_for_one_manifest_share_one_lock(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A symlinked name reaches the real manifest's run guard (refused while a run holds it)
    and its lock (nothing left to do after that run), so no job is bought twice."""
    from i2v_pipeline.state.runlock import RunLock

    path = write_manifest(MANIFEST.format(url=emulator.base_url), name="sc.yaml")
    alias = workdir / "sc-alias.yaml"
    alias.symlink_to(path.name)
    with RunLock(workdir / "sc.lock.yaml", "i2v run sc.yaml"):
        code, err = invoke("run", str(alias), "--yes")
        assert code == 2 and "another i2v run is using this manifest" in err, err
    assert emulator.requests() == 0
    code, err = invoke("run", str(path), "--yes", "-q")
    assert code == 0, err
    bought = emulator.creates()
    code, err = invoke("run", str(alias), "--yes", "-q")
    assert code == 0, err
    assert emulator.creates() == bought
    assert not (workdir / "sc-alias.lock.yaml").exists()
