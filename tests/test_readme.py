"""The README's quickstart, run command by command: each output line it shows is printed."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def quickstart() -> list[tuple[str, list[str]]]:
    """(command, output lines shown) for each `$ ` line of the Quickstart console block."""
    section = README.split("## Quickstart", 1)[1]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def pattern(shown: str) -> re.Pattern[str]:
    """A shown line as a full-line pattern; `...` inside it stands for any text."""
    return re.compile(".*".join(re.escape(part) for part in shown.split("...")))


def execute(command: str) -> str:
    """The few shell commands the quickstart uses; `i2v` runs in-process."""
    argv = shlex.split(command)
    if argv[0] == "i2v":
        result = CliRunner().invoke(cli, argv[1:])
        assert result.exit_code == 0, (command, result.output)
        return result.stdout + result.stderr
    if argv[0] == "rm":
        Path(argv[1]).unlink()
        return ""
    if argv[:2] == ["sed", "-i"]:
        _, old, new, _ = argv[2].split("/")
        path = Path(argv[3])
        text = path.read_text(encoding="utf-8")
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return ""
    raise AssertionError(f"the quickstart runs a command this test does not know: {command}")


def test_readme_quickstart_runs_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of the README's quickstart succeeds and prints the lines shown, in order."""
    shutil.copytree(REPO / "manifests" / "images", tmp_path / "manifests" / "images")
    shutil.copy(REPO / "manifests" / "quickstart.yaml", tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a fresh emulator account
    steps = quickstart()
    assert [c.split()[:2] for c, _ in steps][:2] == [["i2v", "plan"], ["i2v", "run"]]
    for command, shown in steps:
        lines = execute(command).splitlines()
        at = 0
        for want in (s for s in shown if s != "..."):
            rx = pattern(want)
            while at < len(lines) and not rx.fullmatch(lines[at]):
                at += 1
            assert at < len(lines), f"`{command}` did not print {want!r} (in order):\n" + "\n".join(
                lines
            )
            at += 1
