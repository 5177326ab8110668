"""Ctrl-C at any moment of a command's start-up: exit 130 with "interrupted", no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..conftest import REPO

QUICKSTART = str(REPO / "manifests" / "quickstart.yaml")

# A KeyboardInterrupt raised where the named module is first imported, exactly as a Ctrl-C
# arriving at that moment would: deterministic, unlike a signal sent after a guessed delay.
BOMB = textwrap.dedent(
    """
    import sys

    TARGET = sys.argv[1]

    class Bomb:
        def find_spec(self, name, path=None, target=None):
            if name == TARGET:
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, Bomb())
    entry, sys.argv = sys.argv[2], ["i2v", *sys.argv[3:]]
    if entry == "module":
        import runpy

        runpy.run_module("i2v_pipeline", run_name="__main__", alter_sys=True)
    else:
        from i2v_pipeline.cli import main

        main()
    """
)


@pytest.mark.parametrize(
    ("module", "entry", "args"),
    [
        ("i2v_pipeline.spec.campaign", "module", ["validate", QUICKSTART]),
        ("i2v_pipeline.spec.campaign", "script", ["validate", QUICKSTART]),
        ("click", "script", ["plan", QUICKSTART]),
        ("i2v_pipeline.cli.inspect", "module", ["validate", QUICKSTART]),
        ("i2v_pipeline.cli.report_cmds", "script", ["--help"]),
        ("jinja2.sandbox", "module", ["expand", QUICKSTART, "--json"]),
    ],
    ids=["package-import", "console-script", "click", "lazy-command", "help", "lazy-library"],
)
def test_ctrl_c_while_loading_exits_130_quietly(module: str, entry: str, args: list[str]) -> None:
    """An interrupt during any import (eager or lazy) or argument parsing: 130, one word."""
    done = subprocess.run(
        [sys.executable, "-c", BOMB, module, entry, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": "/nonexistent"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr.strip() == "interrupted"


def _run_copy(
    tmp_path: Path, script: str, *before: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`script [before…] run COPY --yes` on a copy of the quickstart: (the copy, how it ended)."""
    shutil.copytree(REPO / "manifests", tmp_path / "m")
    manifest = tmp_path / "m" / "quickstart.yaml"
    done = subprocess.run(
        [sys.executable, "-c", script, *before, "run", str(manifest), "--yes"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "c")},
        timeout=120,
        check=False,
    )
    return manifest, done


@pytest.mark.parametrize(
    ("module", "said"),
    [
        ("i2v_pipeline.run.preflight", "interrupted before anything was sent"),
        ("i2v_pipeline.cli.run_exec", "interrupted before anything was sent"),
        ("uvloop", "interrupted before anything was sent"),
        ("i2v_pipeline.emulator.app", "interrupted before anything was sent"),
    ],
    ids=["checks", "http-stack", "event-loop", "embedded-emulator"],
)
def test_ctrl_c_before_the_first_create_says_nothing_was_bought(
    tmp_path: Path, module: str, said: str
) -> None:
    """`run` interrupted while it checks, loads the HTTP stack, starts its event loop or the
    embedded emulator: 130, no traceback, and it says so; nothing was sent, so nothing is in
    the lock (when it is written at all) and the next run plans every job again."""
    manifest, done = _run_copy(tmp_path, BOMB, module, "script")
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and said in done.stderr, done.stderr
    lock = manifest.with_suffix(".lock.yaml")
    assert not lock.exists() or "jobs: []" in lock.read_text()
    plan = subprocess.run(
        [sys.executable, "-m", "i2v_pipeline", "plan", str(manifest), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=True,
    )
    assert json.loads(plan.stdout)["summary"]["create"] == 6


TERM = textwrap.dedent(
    """
    import os, signal, sys
    from i2v_pipeline.run import preflight

    real = preflight.require

    def require(*args, **kwargs):  # SIGTERM (a cancelled CI job) arrives while run checks
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    preflight.require = require
    sys.argv = ["i2v", *sys.argv[1:]]
    from i2v_pipeline.cli import main

    main()
    """
)


def test_sigterm_before_the_first_create_is_taken_as_a_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM before the run's loop watches for it: the Ctrl-C answer (130, nothing was
    bought, the run lock released), not a silent death by the signal."""
    _, done = _run_copy(tmp_path, TERM)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "interrupted before anything was sent: nothing was bought" in done.stderr
    assert not list((tmp_path / "m").glob("*.run"))
