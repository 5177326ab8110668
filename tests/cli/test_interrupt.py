"""Ctrl-C at any moment of a command's start-up: exit 130 with "interrupted", no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
